"""Linear probes of the discriminator's blocks: how much class information each block holds.

SS-GAN (Chen et al., CVPR 2019, section 4, Tables 3-4, Figures 8-9) trains "a logistic
regression classifier on the feature maps from each ResNet block" of D, to convergence, and
reports top-1 accuracy, following Zhang et al.'s protocol (split-brain autoencoders, CVPR 2017,
which reuses the linear evaluation of Zhang et al.'s colorization, ECCV 2016, section 3.2):
frozen features, average-pooled with equal kernel and stride until a layer has fewer than
~10,000 dimensions, one multinomial linear classifier per layer, trained on the train split,
top-1 on the held-out split. Here:
  - features: `discriminator.block_outputs(images, training=False)` of each checkpoint's D
    (every architecture has it), average-pooled to `probe.pooled_size` (a fixed grid) or, by
    default, by the smallest equal kernel/stride that leaves at most `probe.max_features`
    dimensions (Zhang et al.'s rule);
  - classifier: scikit-learn's LogisticRegression (multinomial, L2, `probe.solver`, up to
    `probe.max_iter` iterations: "to convergence"; a fit that stops at max_iter is recorded
    with converged=false) on standardised features. Zhang et al. trained theirs with SGD;
    for a convex problem the optimiser changes the time, not the optimum, so we take the
    exact solver. Several values of `probe.inverse_regularization` (C) are chosen between
    on a held-out `validation_fraction` of the train examples, then refit on all of them.
  - examples: a uniform random subset (seeded) of `num_train_examples` train and
    `num_test_examples` test images (None = the whole split, the paper's protocol).

A model with SS-GAN's rotation task also gets D's rotation accuracy on the probe's test images
(all four rotations of each; chance 0.25) in every record of the checkpoint
(`d_rotation_accuracy`; null for models without the task): whether D learned the pretext task
on held-out real images, not only on its training batches.

Records (one per checkpoint and block) are appended to <model_dir>/probes.jsonl; features are
cached per checkpoint under <model_dir>/probe_features/, so a resumed probe neither recomputes
them nor refits a (checkpoint, block) already recorded with the same settings.
"""
import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import tempfile
import time
import warnings

import gin
import numpy as np
import tensorflow as tf
from absl import logging

from compare_ssgan import datasets, graphs, jsonl, results
from compare_ssgan.errors import UserError
from compare_ssgan.eval.evaluator import run_description
from compare_ssgan.eval.real_cache import random_subset
from compare_ssgan.eval.scores import json_safe

PROBES_FILE = results.PROBES_FILE
FEATURES_SUBDIR = "probe_features"
SOLVERS = ("lbfgs", "newton-cg", "newton-cholesky", "sag", "saga")


@dataclasses.dataclass(frozen=True)
class ProbeOptions:
    enabled: bool
    num_train_examples: int | None
    num_test_examples: int | None
    pooled_size: int | None
    max_features: int
    inverse_regularization: tuple
    solver: str
    max_iter: int
    tol: float
    validation_fraction: float
    subset_seed: int
    batch_size: int
    blas_threads: int | None
    steps: tuple | None

    def settings(self):
        """What a record's numbers depend on (besides the checkpoint): its identity."""
        d = dataclasses.asdict(self)
        del d["enabled"], d["batch_size"], d["blas_threads"], d["steps"]
        d["inverse_regularization"] = list(d["inverse_regularization"])
        d["classifier"] = "sklearn LogisticRegression (multinomial, L2) on standardised features"
        d["pooling"] = "average, equal kernel and stride"
        return d


@gin.configurable("probe")
def probe_options(enabled=False, num_train_examples=None, num_test_examples=None, pooled_size=None,
                  max_features=10_000, inverse_regularization=(0.001, 0.01, 0.1), solver="lbfgs", max_iter=1000,
                  tol=1e-4, validation_fraction=0.2, subset_seed=0, batch_size=250, blas_threads=None,
                  steps=None):
    """How D's blocks are probed.

    enabled: also probe after eval_after_train / continuous_eval (--schedule=probe always does).
    num_train_examples, num_test_examples: uniform random subsets (None: the whole split).
    pooled_size: average-pool every block to this square grid (at most its own size); None:
        Zhang et al.'s rule, the smallest equal kernel/stride giving <= max_features dims.
    inverse_regularization: LogisticRegression's C; with several, the best on a held-out
        validation_fraction of the train examples is refit on all of them. (Measured on block 0
        of a mini-preset D, 5,000 train images, 8,192 dims: C = 1 fits the train set exactly,
        tests 3.7 points below C = 0.001 and needs more iterations.)
    steps: probe only the checkpoints of these generator steps (None: every checkpoint).
    solver, max_iter, tol: LogisticRegression's optimiser and its convergence criterion.
    blas_threads: threads of the BLAS under scikit-learn (None: its default). On a busy machine
        shared with TensorFlow, 1 can be several times faster (threads spinning for cores).
    """
    def positive_or_none(name, value):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UserError(f"probe.{name} must be a positive integer or None (got {value!r})")

    positive_or_none("num_train_examples", num_train_examples)
    positive_or_none("num_test_examples", num_test_examples)
    positive_or_none("pooled_size", pooled_size)
    if not isinstance(max_features, int) or max_features < 1:
        raise UserError(f"probe.max_features must be a positive integer (got {max_features!r})")
    if isinstance(inverse_regularization, (int, float)):
        inverse_regularization = (inverse_regularization,)
    cs = tuple(float(c) for c in inverse_regularization)
    if not cs or any(not (c > 0 and math.isfinite(c)) for c in cs):
        raise UserError(f"probe.inverse_regularization (C) must be positive numbers (got "
                        f"{inverse_regularization!r}); larger C = weaker L2 regularisation")
    if solver not in SOLVERS:
        raise UserError(f"unknown probe.solver {solver!r}; valid: {', '.join(SOLVERS)} "
                        f"(scikit-learn solvers for multinomial logistic regression)")
    if int(max_iter) < 1 or not float(tol) > 0:
        raise UserError("probe.max_iter must be >= 1 and probe.tol > 0")
    if len(cs) > 1 and not 0 < validation_fraction < 1:
        raise UserError(f"probe.validation_fraction must be in (0, 1) to choose between "
                        f"{len(cs)} values of probe.inverse_regularization (got {validation_fraction!r})")
    if int(batch_size) < 1:
        raise UserError("probe.batch_size must be >= 1")
    positive_or_none("blas_threads", blas_threads)
    if steps is not None:
        if isinstance(steps, int):
            steps = (steps,)
        if not all(isinstance(s, int) and s >= 0 for s in steps):
            raise UserError(f"probe.steps must be generator steps (integers >= 0) or None (got {steps!r})")
        steps = tuple(sorted(set(steps)))
    return ProbeOptions(bool(enabled), num_train_examples, num_test_examples, pooled_size,
                        int(max_features), cs, str(solver), int(max_iter), float(tol),
                        float(validation_fraction), int(subset_seed), int(batch_size), blas_threads, steps)


# -- the classifier -----------------------------------------------------------------------------

def _fit(x, y, c, opts):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    model = make_pipeline(StandardScaler(), LogisticRegression(
        C=c, solver=opts.solver, max_iter=opts.max_iter, tol=opts.tol))
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(opts.blas_threads):
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return model, converged


def fit_probe(train_x, train_y, test_x, test_y, opts):
    """Trains the linear probe on (train_x, train_y); returns its top-1 accuracies and fit."""
    train_x = np.asarray(train_x, np.float32).reshape(len(train_x), -1)
    test_x = np.asarray(test_x, np.float32).reshape(len(test_x), -1)
    classes = np.unique(train_y)
    if len(classes) < 2:
        raise UserError(f"the probe's {len(train_y)} train examples hold {len(classes)} class(es): "
                        f"a classifier needs two or more (raise probe.num_train_examples; an "
                        f"unlabelled dataset cannot be probed)")
    start = time.time()
    validation = {}
    c = opts.inverse_regularization[0]
    if len(opts.inverse_regularization) > 1:
        from sklearn.model_selection import train_test_split

        fit_x, val_x, fit_y, val_y = train_test_split(
            train_x, train_y, test_size=opts.validation_fraction, random_state=opts.subset_seed,
            stratify=train_y if min(np.bincount(train_y)[classes]) > 1 else None)
        for candidate in opts.inverse_regularization:
            model, _ = _fit(fit_x, fit_y, candidate, opts)
            validation[candidate] = float(model.score(val_x, val_y))
        c = max(validation, key=lambda k: (validation[k], -k))  # ties: the stronger regulariser
    model, converged = _fit(train_x, train_y, c, opts)
    if not converged:
        logging.warning("The probe did not converge in probe.max_iter=%d iterations (C=%g); its "
                        "record says converged=false. Raise probe.max_iter.", opts.max_iter, c)
    return {"train_top1": float(model.score(train_x, train_y)),
            "test_top1": float(model.score(test_x, test_y)),
            "inverse_regularization": c,
            "validation_top1": {f"{k:g}": v for k, v in validation.items()} or None,
            "converged": converged,
            "iterations": int(np.max(model[-1].n_iter_)),
            "fit_seconds": round(time.time() - start, 2)}


# -- pooling and features -----------------------------------------------------------------------

def pooled_grid(height, width, channels, opts):
    """The (h, w) a [height, width, channels] block output is average-pooled to."""
    if opts.pooled_size is not None:
        return min(opts.pooled_size, height), min(opts.pooled_size, width)
    k = 1  # Zhang et al.: equal kernel and stride, until the map has <= max_features dims
    while (height // k) * (width // k) * channels > opts.max_features and min(height, width) // k > 1:
        k += 1
    return max(1, height // k), max(1, width // k)


def pool(feature_map, grid):
    """[N, h, w, c] -> [N, grid_h * grid_w * c]: area averaging (= average pooling with equal
    kernel and stride when the grid divides the map)."""
    if tuple(feature_map.shape[1:3]) != tuple(grid):
        feature_map = tf.image.resize(feature_map, grid, method="area")
    return tf.reshape(feature_map, [tf.shape(feature_map)[0], -1])


def _atomic_savez(path, **arrays):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _load_cached(path, key_json):
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as cached:
            if str(cached["key"]) == key_json:
                return {k: cached[k] for k in cached.files if k != "key"}
    except (OSError, ValueError, KeyError) as e:
        logging.warning("Ignoring unreadable probe cache %s (%s); recomputing.", path, e)
    return None


def probe_images(data, split, num_examples, seed):
    """(uint8 images, labels) of a seeded uniform random subset of `split`, cached on disk."""
    key = json.dumps({"dataset": data.name, "source": data.source_description, "split": split,
                      "num_examples": num_examples, "seed": seed, "version": 1}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    path = os.path.join(datasets.cache_dir(), "probe_images", f"{data.name}-{split}-{num_examples}-{digest}.npz")
    cached = _load_cached(path, key)
    if cached is not None:
        return cached["images"], cached["labels"]
    row = np.dtype([("image", np.uint8, data.image_shape), ("label", np.int32)])

    def rows():
        for x, y in data.eval_input(500, split=split):
            batch = np.empty(len(y), row)
            batch["image"] = np.clip(np.round((x.numpy() + 1.0) * 127.5), 0, 255)
            batch["label"] = y.numpy()
            yield batch

    subset, total = random_subset(rows(), num_examples or 2**62, seed)
    if num_examples and total < num_examples:
        raise UserError(f"the {split!r} split of {data.name} has {total} images, fewer than the "
                        f"probe's {num_examples}; lower probe.num_train_examples/num_test_examples")
    _atomic_savez(path, images=subset["image"], labels=subset["label"], key=np.asarray(key))
    return subset["image"], subset["label"]


def rotation_accuracy(gan, images, opts):
    """D's rotation accuracy on all four rotations of `images` (uint8), or None when the model
    has no rotation task (gans/rotation.py)."""
    from compare_ssgan.gans.rotation import RotationTask

    tasks = [t for t in getattr(gan, "tasks", []) if isinstance(t, RotationTask)]
    if not tasks:
        return None
    accuracy = graphs.function(lambda x: tasks[0].accuracy(gan.discriminator, x), reduce_retracing=True)
    correct = 0.0
    for start in range(0, len(images), opts.batch_size):
        x = tf.constant(images[start:start + opts.batch_size], tf.float32) / 127.5 - 1.0
        correct += float(accuracy(x)) * len(x)
    return correct / len(images)


def block_features(discriminator, images, opts):
    """[pooled features [N, F] per block], [(h, w, c) per block], [(h', w') per block]."""
    outputs = graphs.function(lambda x: discriminator.block_outputs(x, training=False), reduce_retracing=True)
    per_block, shapes, grids = None, None, None
    for start in range(0, len(images), opts.batch_size):
        x = tf.constant(images[start:start + opts.batch_size], tf.float32) / 127.5 - 1.0
        maps = outputs(x)
        if per_block is None:
            shapes = [tuple(int(d) for d in m.shape[1:]) for m in maps]
            grids = [pooled_grid(*s, opts) for s in shapes]
            per_block = [[] for _ in maps]
        for i, m in enumerate(maps):
            per_block[i].append(pool(m, grids[i]).numpy())
    return [np.concatenate(b) for b in per_block], shapes, grids


# -- the results file ---------------------------------------------------------------------------

def read_probes(model_dir):
    """The run's probe records, validated against the record schema (compare_ssgan.results); a
    torn last line is skipped with a warning, as in scores.jsonl."""
    path = os.path.join(model_dir, PROBES_FILE)
    if not os.path.exists(path):
        return []
    return [results.parse(r, f"{path} (step {r.get('step')}, block {r.get('block')})") for r in jsonl.read(path)]


def probe_key(record):
    return record.get("step"), record.get("block"), json.dumps(record.get("probe"), sort_keys=True)


def append_probe(model_dir, record):
    """Appends `record` as one line unless an equal-key record is there (as scores.jsonl);
    returns True if written."""
    path = os.path.join(model_dir, PROBES_FILE)
    return jsonl.append_unique(path, json_safe(record), probe_key, lambda _: read_probes(model_dir))


# -- the prober ---------------------------------------------------------------------------------

class Prober:
    """Probes the checkpoints of one run (a training.Trainer)."""

    def __init__(self, trainer, options=None):
        self.trainer, self.opts = trainer, options or probe_options()
        data = trainer.data
        if data.num_classes < 2:
            raise UserError(f"{data.name} is unlabelled: a linear probe needs class labels "
                            f"(probe a run on a labelled dataset, e.g. cifar10)")
        self.splits = (data.info.train_split, data.info.eval_split)
        self._images = None

    def images(self):
        if self._images is None:  # read once, and only when a checkpoint needs features
            data, opts = self.trainer.data, self.opts
            self._images = (probe_images(data, self.splits[0], opts.num_train_examples, opts.subset_seed),
                            probe_images(data, self.splits[1], opts.num_test_examples, opts.subset_seed + 1))
        return self._images

    def features(self, step, path):
        """{'train_i', 'test_i', 'train_labels', 'test_labels', 'shape_i', 'grid_i'} for the
        checkpoint at `path`: from the cache, or computed (restoring it) and cached."""
        settings = self.opts.settings()
        key = json.dumps({"step": step, "checkpoint": os.path.basename(path),
                          "source": self.trainer.data.source_description, "splits": self.splits,
                          **{k: settings[k] for k in ("num_train_examples", "num_test_examples",
                                                      "pooled_size", "max_features", "subset_seed")},
                          "version": 2}, sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        cache = os.path.join(self.trainer.model_dir, FEATURES_SUBDIR, f"step_{step:07d}-{digest}.npz")
        cached = _load_cached(cache, key)
        if cached is not None:
            logging.info("Probe features of step %d from %s.", step, cache)
            return cached
        try:
            self.trainer.checkpoint.restore(path).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError) as e:
            raise UserError(f"cannot restore checkpoint {path} for probing: {type(e).__name__}: "
                            f"{str(e).splitlines()[0][:300]}. Probe with the run's own gin config.") from e
        start = time.time()
        (train_images, train_labels), (test_images, test_labels) = self.images()
        d = self.trainer.gan.discriminator
        train, shapes, grids = block_features(d, train_images, self.opts)
        test, _, _ = block_features(d, test_images, self.opts)
        arrays = {"train_labels": train_labels, "test_labels": test_labels}
        rotation = rotation_accuracy(self.trainer.gan, test_images, self.opts)
        if rotation is not None:
            arrays["rotation_accuracy"] = np.asarray(rotation)
        for i in range(len(train)):
            arrays.update({f"train_{i}": train[i], f"test_{i}": test[i], f"shape_{i}": np.asarray(shapes[i]),
                           f"grid_{i}": np.asarray(grids[i])})
        _atomic_savez(cache, key=np.asarray(key), **arrays)
        logging.info("Probe features of step %d (%d blocks, %d + %d images) in %.0fs; cached in %s.",
                     step, len(train), len(train_labels), len(test_labels), time.time() - start, cache)
        return arrays

    def probe_checkpoint(self, step, path, done_blocks):
        """Fits and records every block of one checkpoint not in `done_blocks`."""
        features = self.features(step, path)
        num_blocks = sum(k.startswith("train_") and k[6:].isdigit() for k in features)
        written = []
        for block in range(num_blocks):
            if block in done_blocks:
                continue
            result = fit_probe(features[f"train_{block}"], features["train_labels"],
                               features[f"test_{block}"], features["test_labels"], self.opts)
            grid = features[f"grid_{block}"].tolist()
            record = results.probe_record(
                step, block, result["train_top1"], result["test_top1"],
                feature_dim=int(features[f"train_{block}"].shape[1]),
                pooling=f"average-pooled to {grid[0]}x{grid[1]}", probe=self.opts.settings(),
                run={**run_description(self.trainer), **result, "checkpoint": os.path.basename(path),
                     "num_blocks": num_blocks, "feature_shape": features[f"shape_{block}"].tolist(),
                     "pooled_grid": grid, "num_train": int(len(features["train_labels"])),
                     "num_test": int(len(features["test_labels"])),
                     "train_split": self.splits[0], "test_split": self.splits[1],
                     "d_rotation_accuracy": (float(features["rotation_accuracy"])
                                             if "rotation_accuracy" in features else None),
                     "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
            logging.info("probe step %d block %d (%d dims): train top-1 %.4f, test top-1 %.4f (C=%g, %d "
                         "iterations%s, %.1fs)", step, block, record["feature_dim"], record["train_top1"],
                         record["test_top1"], record["inverse_regularization"], record["iterations"],
                         "" if record["converged"] else ", NOT converged", record["fit_seconds"])
            if append_probe(self.trainer.model_dir, record):
                written.append((step, block))
        return written

    def done(self):
        """{step: (blocks recorded with these settings, the checkpoint's number of blocks)}."""
        settings = json.dumps(self.opts.settings(), sort_keys=True)
        done = {}
        for r in read_probes(self.trainer.model_dir):
            if json.dumps(r.get("probe"), sort_keys=True) == settings:
                blocks, _ = done.get(r["step"], (set(), None))
                done[r["step"]] = (blocks | {r["block"]}, r.get("num_blocks"))
        return done

    def probe_pending(self):
        """Probes every committed checkpoint not fully recorded; returns [(step, block)] written."""
        from compare_ssgan import checkpoints

        found = checkpoints.listed(self.trainer.checkpoint_dir)[0]
        if self.opts.steps is not None:
            missing = sorted(set(self.opts.steps) - {step for step, _ in found})
            if missing:
                logging.warning("No checkpoint of step(s) %s in %s (probe.steps); probing the others.",
                                missing, self.trainer.checkpoint_dir)
            found = [(step, path) for step, path in found if step in self.opts.steps]
        if not found:
            raise UserError(f"no checkpoints to probe in {self.trainer.checkpoint_dir}"
                            + (f" of probe.steps={list(self.opts.steps)}" if self.opts.steps else "")
                            + ": train the run first (--schedule=train), or correct probe.steps")
        written = []
        for step, path in found:
            blocks, num_blocks = self.done().get(step, (set(), None))
            if num_blocks is not None and len(blocks) >= num_blocks:
                logging.info("Step %d is already probed with these settings; skipping it.", step)
                continue
            written += self.probe_checkpoint(step, path, blocks)
        return written


def probe_run(trainer):
    """--schedule=probe: probes every checkpoint of the run in trainer.model_dir."""
    if not trainer.is_chief:
        return []
    written = Prober(trainer, probe_options()).probe_pending()
    logging.info("Probes done: %d new record(s) in %s.", len(written),
                 os.path.join(trainer.model_dir, PROBES_FILE))
    return written

