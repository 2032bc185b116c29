"""The result record schema: what the evaluator and the probes write and every reader reads.

A record is one JSON object per line (scores.jsonl in a run's model_dir; results.jsonl in a
sweep directory). Every record names its `schema_version` and `kind`:

- "score": FID / KID / IS of one checkpoint (`origin` "checkpoint"), or the step where training
  stopped on a non-finite loss (`origin` "training": no checkpoint, null metrics). `status` is
  ok | collapsed | diverged | damaged (the checkpoint could not be read).
- "probe": linear-probe top-1 accuracy of one discriminator block's features at one step.

Both carry the run's configuration (RUN_FIELDS) and, once gathered by a sweep, a `sweep` block
naming the grid's own axes (`labels`) and gin `bindings`: `axes()` reads all of them, so tables
can group by whatever a sweep varied. Readers go through `read()` / `parse()`: records written
before the schema existed (no `schema_version`, "version 1") are migrated; a malformed record
or a version newer than this code raises RecordError naming the file and line.
"""
import functools
import json
import math

import jsonschema
from gin import config_parser

from compare_ssgan.errors import UserError

SCHEMA_VERSION = 2
SCORES_FILE = "scores.jsonl"  # a run's score records (eval/scores.py)
PROBES_FILE = "probes.jsonl"  # a run's probe records (eval/probes.py)
STATUSES = ("ok", "collapsed", "diverged", "damaged")
# name -> True if lower is better. Probe accuracies are the probe kind's metrics.
METRICS = {"fid": True, "kid": True, "inception_score": False, "train_top1": False, "test_top1": False}
# The run's configuration as the evaluator describes it (eval/evaluator.py, run_description).
RUN_FIELDS = ("model", "architecture", "architecture_config", "tasks", "adversarial_weight", "conditional",
              "loss", "penalty", "lambda", "beta1", "beta2", "disc_iters", "g_lr", "d_lr", "batch_size",
              "training_steps", "ema_decay", "dataset")
# How a checkpoint was scored: FID changes with each (eval/evaluator.py, `protocol`).
PROTOCOL_FIELDS = ("feature_network", "num_samples", "num_fake_sets", "real_split", "eval_seed",
                   "kid_max_block_size", "inception_score_splits")
# Where the images are read from: not part of a run's identity (moving from an image folder to
# tfds continues the same runs; benchmarks/grids.py leaves them out of run ids).
DATA_LOCATION_BINDINGS = ("dataset.image_folder", "dataset.data_dir")


class RecordError(UserError):
    """A record that is not valid JSON, not of a known kind, or of an unreadable version."""


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_SWEEP = {
    "type": "object",
    "required": ["run_id", "dataset", "model", "seed", "gin_files", "bindings", "labels", "state"],
    "properties": {
        "run_id": {"type": "string"}, "dataset": {"type": "string"}, "model": {"type": "string"},
        "seed": {"type": "integer"}, "gin_files": {"type": "array", "items": {"type": "string"}},
        "bindings": {"type": "array", "items": {"type": "array", "minItems": 2, "maxItems": 2,
                                                "items": {"type": "string"}}},
        "labels": {"type": "object"}, "state": {"type": ["string", "null"]},
        "axes": {"type": "array", "items": {"type": "string"}},  # the labels' names in grid order
    },
}
_COMMON = {
    "schema_version": {"const": SCHEMA_VERSION},
    "step": {"type": "integer", "minimum": 0},
    "model": {"type": "string"}, "dataset": {"type": "string"}, "seed": {"type": "integer"},
    "training_steps": {"type": "integer"},
    "sweep": _SWEEP,
}
SCHEMAS = {
    "score": {
        "type": "object",
        "required": ["schema_version", "kind", "origin", "step", "status", "checkpoint", "fid", "fid_std",
                     "kid", "kid_std", "inception_score", "inception_score_std", "metric_labels", "seed",
                     *RUN_FIELDS, *PROTOCOL_FIELDS],
        "properties": {
            **_COMMON,
            "kind": {"const": "score"},
            "origin": {"enum": ["checkpoint", "training"]},
            "status": {"enum": list(STATUSES)},
            "checkpoint": {"type": ["string", "null"]},
            **{name: _NUMBER_OR_NULL for name in ("fid", "fid_std", "kid", "kid_std", "inception_score",
                                                  "inception_score_std")},
            "metric_labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "feature_network": {"type": "object", "required": ["name", "source"],
                                "properties": {"name": {"type": "string"}, "source": {"type": "string"}}},
            "num_samples": {"type": "integer", "minimum": 1},
            "num_fake_sets": {"type": "integer", "minimum": 1},
            "real_split": {"type": "string"},
            "eval_seed": {"type": "integer"},
        },
        # A score of a checkpoint names it; a training divergence has none.
        "if": {"properties": {"origin": {"const": "training"}}},
        "then": {"properties": {"checkpoint": {"type": "null"}, "status": {"const": "diverged"}}},
        "else": {"properties": {"checkpoint": {"type": "string"}}},
    },
    "probe": {
        "type": "object",
        "required": ["schema_version", "kind", "step", "block", "train_top1", "test_top1", "feature_dim",
                     "pooling", "probe", "model", "dataset", "seed"],
        "properties": {
            **_COMMON,
            "kind": {"const": "probe"},
            "block": {"type": "integer", "minimum": 0},  # 0 = D's first block
            "train_top1": {"type": "number", "minimum": 0, "maximum": 1},
            "test_top1": {"type": "number", "minimum": 0, "maximum": 1},
            "feature_dim": {"type": "integer", "minimum": 1},
            "pooling": {"type": "string"},  # how a block's feature map became a vector
            "probe": {"type": "object"},  # the classifier's settings (regulariser, epochs, ...)
            # D's rotation head on the test images (null: a model without the rotation task)
            "d_rotation_accuracy": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        },
    },
}


def score_header(origin, step, checkpoint, status):
    """The first fields of a score record; the evaluator adds the metrics and the run."""
    return {"schema_version": SCHEMA_VERSION, "kind": "score", "origin": origin, "step": int(step),
            "checkpoint": checkpoint, "status": status}


def probe_record(step, block, train_top1, test_top1, feature_dim, pooling, probe, run):
    """A probe record; `run` holds at least model, dataset and seed (ideally every RUN_FIELDS)."""
    record = {"schema_version": SCHEMA_VERSION, "kind": "probe", "step": int(step), "block": int(block),
              "train_top1": float(train_top1), "test_top1": float(test_top1),
              "feature_dim": int(feature_dim), "pooling": pooling, "probe": dict(probe), **run}
    validate(record)
    return record


def _migrate_v1(record):
    """Records written before the schema: a divergence of training was marked by a "checkpoint"
    key holding null, and the kind and origin were implicit. Probe records (a "block" and a
    "test_top1") named their pooling only by its grid."""
    record = dict(record)
    if "block" in record and "test_top1" in record:
        grid = record.get("pooled_grid") or ["?", "?"]
        record.setdefault("pooling", f"average-pooled to {grid[0]}x{grid[1]}")
        record.update(schema_version=2, kind="probe")
        return record
    training = "checkpoint" in record and not record["checkpoint"]
    record.setdefault("checkpoint", None)
    record.setdefault("status", "diverged" if training or record.get("fid") is None else "ok")
    record.update(schema_version=2, kind="score", origin="training" if training else "checkpoint")
    return record


MIGRATIONS = {1: _migrate_v1}  # version -> function to the next version


def validate(record, where="record"):
    """Raises RecordError unless `record` is a valid current-version record."""
    kind = record.get("kind")
    if kind not in SCHEMAS:
        raise RecordError(f"{where}: unknown record kind {kind!r}; known: {', '.join(SCHEMAS)}")
    validator = jsonschema.Draft202012Validator(SCHEMAS[kind])
    error = jsonschema.exceptions.best_match(validator.iter_errors(record))
    if error is not None:
        field = ".".join(map(str, error.absolute_path)) or "the record"
        raise RecordError(f"{where}: not a valid {kind} record (schema_version {SCHEMA_VERSION}): "
                          f"{field}: {error.message[:300]}")


def parse(record, where="record"):
    """A record read from JSON, migrated to the current version and validated."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
    version = record.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordError(f"{where}: schema_version {version!r} is not a version this code knows "
                          f"(1 to {SCHEMA_VERSION})")
    if version > SCHEMA_VERSION:
        raise RecordError(f"{where}: schema_version {version} is newer than this code reads "
                          f"({SCHEMA_VERSION}); update compare_ssgan to read it")
    while version < SCHEMA_VERSION:
        record, version = MIGRATIONS[version](record), version + 1
    validate(record, where)
    return record


def _no_constant(text):
    raise ValueError(f"{text} is not valid JSON (write null)")


def read(path):
    """Every record of a JSON-lines file, current version; errors name the file and line."""
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                obj = json.loads(line, parse_constant=_no_constant)
            except ValueError as e:
                raise RecordError(f"{where}: not valid JSON ({e}); fix or delete that line") from None
            records.append(parse(obj, where))
    return records


def is_training_divergence(record):
    return record.get("origin") == "training"


def network_identity(network):
    """A feature network's weights: the content hash its `source` ends with ("<where> sha256:<hex>",
    eval/feature_networks.py), else the whole source (a TF Hub handle names its weights). Where
    the file lay is not part of it: one model at two paths scores alike."""
    source = (network or {}).get("source")
    return source[source.rindex("sha256:"):] if source and "sha256:" in source else source


def score_key(record):
    """What makes two score records scores of the same evaluation of the same checkpoint: the
    scores file's "already scored?" identity, and the sweep's "latest record per evaluation"."""
    network = record.get("feature_network") or {}
    return (record.get("step"), network.get("name"), network_identity(network), record.get("num_samples"),
            record.get("num_fake_sets"), record.get("real_split"), record.get("eval_seed"),
            "checkpoint" if record.get("checkpoint") else "divergence")  # see Evaluator.record_divergence


def _hashable(value):
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _flatten(prefix, value):
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _flatten(f"{prefix}.{key}", value[key])
    else:
        yield prefix, _hashable(value)


class _ReferencesAsText(config_parser.ParserDelegate):
    """Keeps `@scope/name()` and `%MACRO` as written: gin's own delegate resolves them against
    the configurables registered in this process and drops scopes and macro names."""

    def configurable_reference(self, scoped_name, evaluate):
        return f"@{scoped_name}" + ("()" if evaluate else "")

    def macro(self, name):
        return f"%{name}"


def _plain(value):
    """A parsed gin value as JSON-able data in which only equal gin values are equal: True is
    not 1 (Python says it is), 0 is 0.0."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, int, float)) or value is None:
        return value
    return repr(value)  # bytes, complex: compared by their literal


@functools.lru_cache(maxsize=4096)
def _parse_bindings(text):
    """{binding name: comparable value} of gin binding statements (gin's own parser); a macro
    definition `X = 5` is named X."""
    parser = config_parser.ConfigParser(text, _ReferencesAsText())
    return {(f"{s.scope}/" if s.scope else "") + s.selector + (f".{s.arg_name}" if s.arg_name else ""):
            _hashable(_plain(s.value)) for s in parser if isinstance(s, config_parser.BindingStatement)}


def gin_value(name, text):
    """A sweep binding's value, comparable across spellings: `0` equals `0.0`, strings lose their
    quotes. Text gin cannot parse stays as written."""
    try:
        return _parse_bindings(f"{name} = {text}").get(name, text)
    except (SyntaxError, ValueError):
        return text


def operative_binding(record, name):
    """The value `name` had in the run's operative gin configuration (`gin_config`): what a run
    that was not given a sweep's binding ran with. None if the record does not say."""
    try:
        return _parse_bindings(record.get("gin_config") or "").get(name)
    except (SyntaxError, ValueError):
        return None


def axes(record):
    """{(source, name): value} of everything that identifies a run's configuration and its
    evaluation protocol, except the seed, in display priority: the grid's own labels, dataset
    and model, the run's configuration, the sweep's gin bindings and files, the protocol. Two
    records with different axes are different configurations; the code version is not an axis
    (the runs table lists it)."""
    sweep = record.get("sweep") or {}
    labels = sweep.get("labels") or {}
    order = [name for name in sweep.get("axes", ()) if name in labels]
    result = {("label", name): _hashable(labels[name]) for name in order + sorted(set(labels) - set(order))}
    for name in RUN_FIELDS:
        if name in record:
            result.update({("run", key): value for key, value in _flatten(name, record[name])})
    for name, value in sweep.get("bindings", ()):
        if name not in DATA_LOCATION_BINDINGS:
            result[("gin", name)] = gin_value(name, value)
    if "gin_files" in sweep:
        result[("gin", "files")] = _hashable(sweep["gin_files"])
        # The files after the model's own (sweeps put it first, the preset last): the models of
        # a row may differ in their gin file, never in these.
        result[("gin", "presets")] = _hashable(sweep["gin_files"][1:])
    network = record.get("feature_network") or {}
    for name in PROTOCOL_FIELDS:
        if name == "feature_network":
            result[("protocol", "feature_network")] = network.get("name")
            result[("protocol", "feature_network.weights")] = network_identity(network)
        elif name in record:
            result[("protocol", name)] = _hashable(record[name])
    if record.get("kind") == "probe":
        result[("probe", "block")] = record["block"]
        result[("probe", "pooling")] = record["pooling"]
        result.update({("probe", key): value for key, value in _flatten("probe", record["probe"])})
    return result
