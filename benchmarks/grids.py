"""Sweep grids: the papers' (robustness, sample_quality) and user-defined ones from a JSON file.

A grid expands to RunSpecs: gin files + bindings + seed. A run's id is derived from its
configuration (not from its position in the grid), so re-running a sweep finds the same runs.
Data-location bindings (where the images are read from) are not part of the id: moving from
an image folder to tfds continues the same runs.
"""
import dataclasses
import hashlib
import itertools
import json
import os

from compare_ssgan import results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = ("paper", "mini", "smoke")
_NOT_IN_ID = results.DATA_LOCATION_BINDINGS

# SS-GAN Table 2: penalty x (beta1, beta2, disc_iters), Uncond-GAN vs SS-GAN.
PENALTIES = {
    "SN": {"architecture.d_spectral_norm": True, "penalty.fn": "@no_penalty"},
    "WGAN-GP (1)": {"architecture.d_spectral_norm": False, "penalty.fn": "@wgan_gp", "penalty.weight": 1.0},
    "WGAN-GP (10)": {"architecture.d_spectral_norm": False, "penalty.fn": "@wgan_gp", "penalty.weight": 10.0},
}
OPTIMIZER_SETTINGS = ((0.0, 0.9, 1), (0.0, 0.9, 2), (0.5, 0.999, 1))
ROBUSTNESS_MODELS = ("uncond", "ssgan")
# SS-GAN Table 1: models per dataset (gin/<dataset>/<model>.gin).
SAMPLE_QUALITY_MODELS = {
    "cifar10": ("uncond", "cond", "ssgan", "ssgan_sbn"),
    "imagenet": ("uncond", "cond", "ssgan", "ssgan_sbn"),
    "lsun_bedroom": ("uncond", "ssgan", "ssgan_sbn"),
    "celeba_hq": ("uncond", "ssgan", "ssgan_sbn"),
}


def format_value(value):
    """A Python value as a gin literal (strings starting with @ are references)."""
    if isinstance(value, str):
        return value if value.startswith("@") else repr(value)
    if isinstance(value, bool):
        return "True" if value else "False"
    return repr(value)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    dataset: str
    model: str
    gin_files: tuple  # relative to the repository root, preset last
    bindings: tuple  # ((name, gin literal), ...) in application order
    seed: int
    labels: tuple = ()  # ((column, value), ...) for tables, e.g. the penalty row name

    @property
    def run_id(self):
        key = json.dumps({"gin_files": self.gin_files, "seed": self.seed,
                          "bindings": [(k, v) for k, v in self.bindings if k not in _NOT_IN_ID]},
                         sort_keys=True)
        return f"{self.dataset}-{self.model}-s{self.seed}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"

    def gin_params(self):
        return [f"{k}={v}" for k, v in self.bindings] + [f"options.seed={self.seed}"]

    def describe(self):
        return " ".join([*self.gin_files, *self.gin_params()])


def _literals(items):
    return tuple((name, format_value(value)) for name, value in items)


def parse_bindings(params):
    """['a.b=1', ...] (gin syntax, as --gin_param) -> (('a.b', '1'), ...)."""
    pairs = []
    for param in params:
        name, sep, value = param.partition("=")
        if not sep:
            raise ValueError(f"--gin_param={param!r} is not of the form name=value")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def _model_gin(dataset, model):
    path = os.path.join("gin", dataset, f"{model}.gin")
    if not os.path.isfile(os.path.join(REPO, path)):
        raise ValueError(f"no gin file {path} for model {model!r} on dataset {dataset!r}")
    return path


def robustness(datasets, seeds, preset, extra=()):
    runs = []
    # Seeds before models: an unfinished sweep has both models of a row at the same seeds.
    for dataset, (penalty, penalty_bindings), (beta1, beta2, disc_iters), seed, model in itertools.product(
            datasets, PENALTIES.items(), OPTIMIZER_SETTINGS, seeds, ROBUSTNESS_MODELS):
        bindings = (*_literals(penalty_bindings.items()), *_literals(
            [("options.beta1", beta1), ("options.beta2", beta2), ("options.disc_iters", disc_iters)]), *extra)
        labels = (("penalty", penalty), ("lambda", penalty_bindings.get("penalty.weight")),
                  ("beta1", beta1), ("beta2", beta2), ("disc_iters", disc_iters))
        runs.append(RunSpec(dataset, model, (_model_gin(dataset, model), f"gin/presets/{preset}.gin"),
                            tuple(bindings), seed, labels))
    return runs


def sample_quality(datasets, seeds, preset, extra=()):
    runs = []
    for dataset in datasets:
        if dataset not in SAMPLE_QUALITY_MODELS:
            raise ValueError(f"sample_quality has no models for {dataset!r}; known: {sorted(SAMPLE_QUALITY_MODELS)}")
        for seed, model in itertools.product(seeds, SAMPLE_QUALITY_MODELS[dataset]):  # seeds first
            runs.append(RunSpec(dataset, model, (_model_gin(dataset, model), f"gin/presets/{preset}.gin"),
                                tuple(extra), seed))
    return runs


def from_file(path, datasets, seeds, preset, extra=()):
    """A user grid: {"models": ["ssgan", ...], "grid": {"gin.name": [values, ...]},
    "bindings": {"gin.name": value}}; runs = datasets x product(grid) x seeds x models (seeds
    before models, as the robustness grid: an unfinished sweep has every model at the same seeds)."""
    with open(path) as f:
        spec = json.load(f)
    unknown = set(spec) - {"models", "grid", "bindings"}
    if unknown or "models" not in spec:
        raise ValueError(f"{path}: expected keys models, grid, bindings (got {sorted(spec)})")
    grid = spec.get("grid", {})
    names = list(grid)
    runs = []
    for dataset, values, seed, model in itertools.product(
            datasets, itertools.product(*(grid[n] for n in names)), seeds, spec["models"]):
        point = tuple(zip(names, values))
        bindings = (*_literals(spec.get("bindings", {}).items()), *_literals(point), *extra)
        runs.append(RunSpec(dataset, model, (_model_gin(dataset, model), f"gin/presets/{preset}.gin"),
                            tuple(bindings), seed, point))
    return runs


def build(sweep, datasets, seeds, preset, extra=()):
    """The runs of a sweep; `extra` are (name, gin literal) pairs applied to every run, last."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    if sweep == "robustness":
        return robustness(datasets, seeds, preset, extra)
    if sweep == "sample_quality":
        return sample_quality(datasets, seeds, preset, extra)
    if os.path.isfile(sweep):
        return from_file(sweep, datasets, seeds, preset, extra)
    raise ValueError(f"unknown sweep {sweep!r}: use robustness, sample_quality or a grid JSON file")
