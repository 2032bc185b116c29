"""Scores a run's checkpoints (FID, KID, IS) and appends them to <model_dir>/scores.jsonl.

For each checkpoint: restore the generator into the run's `training.Trainer`, draw
`num_fake_sets` sets of `num_samples` images with fixed latents (seeded by `eval_seed` and the
set index, the same for every checkpoint), run the feature network on them, and compare with
the real activations of `real_split` (the test split by default, as in the SS-GAN paper).
FID/KID/IS per set come from compare_ssgan.eval.metrics; the record holds their mean and
sample standard deviation (ddof=1; null for a single set) over the fake sets.

Real activations are cached under datasets.cache_dir()/real_activations/, one .npz per
(dataset, source, split, feature network and its weights, number of samples, and for an image
folder the split's file list, sizes and modification times), written to a
temporary file and renamed, so a sweep computes them once and a crash never leaves half a file.
The real images are a uniform random subset of the split, drawn with a fixed seed
(REAL_SUBSET_SEED), in random order (KID's blocks and IS's splits assume a random order).

scores.jsonl: one "score" record (compare_ssgan.results) per line (compare_ssgan.jsonl: an
append never merges with a torn last line). Each line is appended with a single os.write() on a
file opened with O_APPEND (atomic with respect to other appenders on a local POSIX filesystem), under an exclusive flock that also covers the "already scored?" check, so two
evaluators of one run never write a step twice. A checkpoint counts as already scored when a
line has the same step, feature network (name and weights), number of samples, number of fake
sets, real split and eval seed; changing any of these (e.g. adding an Inception evaluation of
a run scored offline) appends new lines. JSON has no NaN: undefined values are null.

A generator whose samples are not finite is recorded with "status": "diverged" and null
metrics; one whose samples are all identical gets "status": "collapsed" (its metrics are still
computed: they are valid, and bad). A checkpoint whose files cannot be read (see
compare_ssgan.checkpoints) gets "status": "damaged", null metrics and a "reason", and the other
checkpoints are still scored. Healthy checkpoints have "status": "ok".
"""
import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import json
import math
import os
import tempfile
import time

import gin
import numpy as np
import tensorflow as tf
from absl import logging

from compare_ssgan import architectures, checkpoints, datasets, disk, jsonl, locks, provenance, results, runner
from compare_ssgan.errors import NaNLossError, UserError
from compare_ssgan.eval import feature_networks, metrics

SCORES_FILE = "scores.jsonl"
REAL_SUBSET_SEED = 0
_COLLAPSE_TOLERANCE = 1e-6  # max |x_i - x_0| over a whole fake set, in [-1, 1] pixel units: identical
# to float32 precision (a freshly initialised N(0, 0.02) generator at test widths already varies by ~5e-5)


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    feature_network: str
    num_samples: int
    num_fake_sets: int
    eval_seed: int
    real_split: str | None
    sample_batch_size: int
    kid_max_block_size: int
    inception_score_splits: int


@gin.configurable("evaluation")
def evaluation_options(feature_network="inception", num_samples=10_000, num_fake_sets=3, eval_seed=0,
                       real_split=None, sample_batch_size=100, kid_max_block_size=1024,
                       inception_score_splits=10):
    """How checkpoints are scored.

    feature_network: 'inception' (the papers' FID; see `inception.path`) or 'cifar10_classifier'
        (offline; not comparable to papers' FID).
    num_samples: generated images per fake set, and real images (SS-GAN: 10,000).
    num_fake_sets: fake sets averaged (compare_gan used 3); mean and std are reported.
    eval_seed: seeds the latents and labels of every fake set (the same for every checkpoint).
    real_split: split for the real statistics; None = the dataset's evaluation split ('test').
    kid_max_block_size, inception_score_splits: as TF-GAN (1024) and Salimans et al. (10).
    """
    if feature_network not in feature_networks.names():
        raise UserError(f"unknown feature network {feature_network!r}; valid names: "
                        f"{', '.join(feature_networks.names())} (set evaluation.feature_network in gin)")
    num_samples, num_fake_sets = int(num_samples), int(num_fake_sets)
    inception_score_splits = int(inception_score_splits)
    if num_fake_sets < 1 or sample_batch_size < 1:
        raise UserError("evaluation.num_fake_sets and evaluation.sample_batch_size must be >= 1")
    if inception_score_splits < 1 or num_samples < max(2 * inception_score_splits, 4):
        raise UserError(f"evaluation.num_samples={num_samples} is too small: the Inception Score "
                        f"with evaluation.inception_score_splits={inception_score_splits} needs at "
                        f"least {max(2 * inception_score_splits, 4)} samples")
    if int(kid_max_block_size) < 2:
        raise UserError("evaluation.kid_max_block_size must be >= 2")
    return EvalOptions(str(feature_network), num_samples, num_fake_sets, int(eval_seed),
                       None if real_split is None else str(real_split), int(sample_batch_size),
                       int(kid_max_block_size), inception_score_splits)


@gin.configurable("continuous_eval")
def continuous_eval_options(timeout_secs=3600.0, poll_secs=10.0):
    """continuous_eval gives up (with an error) after `timeout_secs` without a new checkpoint,
    checking for one every `poll_secs`."""
    if timeout_secs < 0 or poll_secs <= 0:
        raise UserError("continuous_eval.timeout_secs must be >= 0 and poll_secs > 0")
    return float(timeout_secs), float(poll_secs)


# -- JSON and the scores file -------------------------------------------------------------------

def _json_safe(value):
    """NaN/inf -> None (JSON has no NaN), numpy scalars -> Python, recursively."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def read_scores(model_dir):
    """The records of <model_dir>/scores.jsonl (an unreadable line is skipped with a warning
    naming its line number)."""
    path = os.path.join(model_dir, SCORES_FILE)
    return jsonl.read(path) if os.path.exists(path) else []


def score_key(record):
    """What makes two records scores of the same evaluation of the same checkpoint."""
    network = record.get("feature_network") or {}
    return (record.get("step"), network.get("name"), network.get("source"), record.get("num_samples"),
            record.get("num_fake_sets"), record.get("real_split"), record.get("eval_seed"),
            "checkpoint" if record.get("checkpoint") else "divergence")  # see record_divergence


@contextlib.contextmanager
def _locked_scores(model_dir):
    """An O_APPEND descriptor of scores.jsonl, held under an exclusive flock."""
    fd = os.open(os.path.join(model_dir, SCORES_FILE), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def append_score(model_dir, record):
    """Appends `record` as one line unless an equal-key record exists; returns True if written."""
    with _locked_scores(model_dir) as fd:
        if any(score_key(r) == score_key(record) for r in read_scores(model_dir)):
            logging.info("step %s is already in %s; not writing it again.", record.get("step"), SCORES_FILE)
            return False
        with disk.no_space_is_a_user_error(f"a score (step {record.get('step')})", model_dir):
            jsonl.append(fd, _json_safe(record))
    return True


# -- real activations ---------------------------------------------------------------------------

def _random_subset(batches, num, seed):
    """A uniform random subset of `num` rows of a stream of arrays, in random order, with
    memory O(num + batch): each row gets a seeded uniform key; keep the `num` smallest keys."""
    rng = np.random.default_rng(seed)
    keys, rows, total = np.empty([0]), None, 0
    for batch in batches:
        total += len(batch)
        batch_keys = rng.random(len(batch))
        keys = np.concatenate([keys, batch_keys])
        rows = batch if rows is None else np.concatenate([rows, batch])
        if len(keys) > num:
            keep = np.argpartition(keys, num)[:num]
            keys, rows = keys[keep], rows[keep]
    if rows is None:
        return np.empty([0]), 0
    order = np.argsort(keys, kind="stable")
    return rows[order], total


def _to_uint8(images):
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def real_activations(data, split, network, num_samples):
    """(features, logits) of `num_samples` real images of `split`, cached on disk."""
    key = {"dataset": data.name, "source": data.source_description, "split": split,
           "feature_network": network.info.name, "feature_network_source": network.info.source,
           "num_samples": int(num_samples), "subset": f"uniform random, seed {REAL_SUBSET_SEED}",
           "content": data.content_fingerprint(split), "version": 2}
    key_json = json.dumps(key, sort_keys=True)
    digest = hashlib.sha1(key_json.encode()).hexdigest()[:12]
    directory = datasets.cache_subdir("real_activations")
    path = os.path.join(directory, f"{data.name}-{split}-{network.info.name}-{num_samples}-{digest}.npz")
    if os.path.exists(path):
        try:
            with np.load(path) as cached:
                if str(cached["key"]) == key_json:
                    logging.info("Real activations (%s split, %d images, %s) from cache %s.",
                                 split, num_samples, network.info.name, path)
                    return cached["features"], cached["logits"]
        except (OSError, ValueError, KeyError) as e:
            logging.warning("Ignoring unreadable real-activation cache %s (%s); recomputing.", path, e)
    start = time.time()
    # Kept as uint8 until the network runs (a quarter of the memory of float32; exact for
    # images stored at the dataset's resolution, within half a grey level for resized ones).
    images = (_to_uint8(x.numpy()) for x, _ in data.eval_input(500, split=split))
    try:
        images, total = _random_subset(images, num_samples, REAL_SUBSET_SEED)
    except tf.errors.InvalidArgumentError as e:  # e.g. an undecodable image
        data.check_decodable(split, e)
        raise
    if total < num_samples:
        raise UserError(f"the {split!r} split of {data.name} has {total} images, fewer than "
                        f"evaluation.num_samples={num_samples}; lower it or choose another "
                        f"evaluation.real_split")
    outputs = [network(images[i:i + 1000].astype(np.float32) / 127.5 - 1.0)
               for i in range(0, len(images), 1000)]
    features = np.concatenate([f for f, _ in outputs])
    logits = np.concatenate([l for _, l in outputs])
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, features=features, logits=logits, key=np.asarray(key_json))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    logging.info("Real activations (%s split, %d of %d images, %s) computed in %.0fs; cached in %s.",
                 split, num_samples, total, network.info.name, time.time() - start, path)
    return features, logits


# -- the evaluator ------------------------------------------------------------------------------

def _mean_std(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    mean = float(np.mean(values))
    return mean, (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def untracked_variables(checkpoint, model):
    """Paths of `model`'s variables that `checkpoint` does not save (e.g. Keras 3 layers kept
    in a Python list are invisible to tf.train.Checkpoint unless reached another way)."""
    tracked = {id(x) for x in tf.train.TrackableView(checkpoint).descendants()}
    return [w.path for w in model.weights if id(w) not in tracked]


class Evaluator:
    """Scores checkpoints of one run (a training.Trainer) with one feature network."""

    def __init__(self, trainer, options=None):
        self.trainer = trainer
        self.opts = options or evaluation_options()
        self.model_dir = trainer.model_dir
        data = trainer.data
        self.real_split = self.opts.real_split or data.info.eval_split
        valid_splits = (data.info.train_split, data.info.eval_split)
        if self.real_split not in valid_splits:
            raise UserError(f"unknown evaluation.real_split {self.real_split!r}; valid: "
                            f"{', '.join(valid_splits)}")
        self.network = feature_networks.build(self.opts.feature_network)
        if self.network.info.name == "cifar10_classifier" and data.name != "cifar10":
            logging.warning("Scoring %s images with the CIFAR-10 classifier (images resized to 32x32): "
                            "its numbers only compare runs on %s with each other.", data.name, data.name)
        self.label = self.network.info.label  # e.g. "FID (CIFAR-10 classifier)"
        self.metric_labels = metric_labels(self.label)
        self.real_features, self.real_logits = real_activations(
            data, self.real_split, self.network, self.opts.num_samples)
        gan = trainer.gan
        generator = gan.sampling_generator
        self._generate = tf.function(lambda z, y: generator(z, y, training=False), reduce_retracing=True)
        self.untracked = untracked_variables(trainer.checkpoint, generator)
        if self.untracked:
            logging.warning(
                "%d of the sampling generator's %d variables are not in the run's checkpoints (%s%s): "
                "evaluating a checkpoint keeps their in-memory values, so scores may be wrong. "
                "Every record names them under 'warnings'.", len(self.untracked), len(generator.weights),
                ", ".join(self.untracked[:4]), ", ..." if len(self.untracked) > 4 else "")

    def _run_description(self):
        return run_description(self.trainer)

    def evaluate(self, path):
        """Scores the checkpoint at `path`; returns the record (not yet written)."""
        start = time.time()
        try:
            # Every object must get values: e.g. an EMA generator evaluated from a run trained
            # without EMA would otherwise be scored with its random initial weights.
            self.trainer.checkpoint.restore(path).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:
            reason = checkpoints.damage(path)
            if reason is not None and tf.io.gfile.exists(path + ".index"):  # else: deleted, not damaged
                return self._damaged(path, reason, start)
            raise UserError(f"cannot restore checkpoint {path} for evaluation: {type(e).__name__}: "
                            f"{str(e).splitlines()[0][:300]}. If the gin config changed since "
                            f"training, evaluate with the original config.") from e
        step = int(self.trainer.step.numpy())
        per_set = score_generated_sets(lambda z, y: self._generate(z, y).numpy(), self.trainer.gan.arch,
                                       self.trainer.gan.arch.z_dim, self.trainer.data.num_classes,
                                       self.network, self.real_features, self.opts)
        combined = combine_sets(per_set)
        record = results.score_header("checkpoint", step, os.path.basename(path), combined.pop("status"))
        record.update(combined)
        record.update(self._context(), per_set=per_set, eval_seconds=round(time.time() - start, 2))
        results.validate(_json_safe(record), f"the score of {path}")
        return record

    def _damaged(self, path, reason, start):
        """The record of a checkpoint whose files cannot be read: null metrics, the reason;
        scoring goes on with the other checkpoints (the files are left where they are)."""
        logging.warning("Checkpoint %s is damaged (%s): recording it as such and going on.", path, reason)
        record = {"step": checkpoints.step_of(path), "checkpoint": os.path.basename(path),
                  "status": "damaged", "reason": reason}
        for name in ("fid", "kid", "inception_score"):
            record[name] = record[f"{name}_std"] = None
        record.update(self._context(), per_set=[], eval_seconds=round(time.time() - start, 2))
        return record

    def _context(self):
        """What every record of this evaluator carries: the protocol, the run, when."""
        return {
            "fid_label": self.label,
            "metric_labels": self.metric_labels,
            "feature_network": self.network.info.as_dict(),
            "num_samples": self.opts.num_samples,
            "num_real_samples": int(len(self.real_features)),
            "num_fake_sets": self.opts.num_fake_sets,
            "real_split": self.real_split,
            "eval_seed": self.opts.eval_seed,
            "kid_max_block_size": self.opts.kid_max_block_size,
            "inception_score_splits": self.opts.inception_score_splits,
            "std_note": "std over fake sets (ddof=1); null with one set",
            "warnings": ([f"{len(self.untracked)} sampling-generator variables are not saved in "
                          f"checkpoints and kept their in-memory values: {', '.join(self.untracked)}"]
                         if self.untracked else []),
            **self._run_description(),
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "gin_config": gin.operative_config_str(),
        }

    def record_divergence(self, error):
        """Appends a 'diverged' record (null metrics) at the step where training hit a non-finite
        loss, so tables count the run as diverged even if it died before its first checkpoint."""
        record = {**results.score_header("training", error.step, None, "diverged"), "reason": str(error)}
        for name in ("fid", "kid", "inception_score"):
            record[name] = record[f"{name}_std"] = None
        record.update(self._context(), per_set=[], eval_seconds=0.0)
        results.validate(_json_safe(record), f"the divergence record of {self.model_dir}")
        append_score(self.model_dir, record)

    def _log(self, record):
        logging.info("step %d | %s | %d set(s) x %d samples vs %s split | %.1fs", record["step"],
                     summary_line(record), record["num_fake_sets"], record["num_samples"],
                     record["real_split"], record["eval_seconds"])

    def scored_steps(self):
        mine = score_key({"step": None, "checkpoint": "any", "feature_network": self.network.info.as_dict(),
                          "num_samples": self.opts.num_samples, "num_fake_sets": self.opts.num_fake_sets,
                          "real_split": self.real_split, "eval_seed": self.opts.eval_seed})[1:]
        return {r["step"] for r in read_scores(self.model_dir) if score_key(r)[1:] == mine}

    def evaluate_pending(self):
        """Scores every committed checkpoint not yet in scores.jsonl; returns the steps written."""
        written = []
        for step, path in checkpoints.listed(self.trainer.checkpoint_dir)[0]:
            if step in self.scored_steps():
                continue
            try:
                record = self.evaluate(path)
            except UserError:
                if not tf.io.gfile.exists(path + ".index"):  # deleted meanwhile (max_to_keep)
                    logging.warning("Checkpoint %s disappeared before it was evaluated; skipping.", path)
                    continue
                raise
            self._log(record)
            if append_score(self.model_dir, record):
                written.append(record["step"])
        return written


def metric_labels(label):
    """{"fid", "kid", "inception_score"} -> their names, from the network's FID label."""
    return {"fid": label, "kid": label.replace("FID", "KID", 1), "inception_score": label.replace("FID", "IS", 1)}


def generated_set(generate, network, prior, z_dim, num_classes, opts, index):
    """Features and logits of fake set `index` of `generate(z, labels) -> images`, with a
    status: 'ok' | 'collapsed' | 'diverged'. `prior` is what architectures.sample_latents reads."""
    n = opts.num_samples
    z = architectures.sample_latents(prior, [n, z_dim], [opts.eval_seed, index])
    # Balanced labels in a seeded random order (only conditional generators read them).
    labels = np.random.default_rng([opts.eval_seed, index]).permutation(np.arange(n) % num_classes)
    labels = tf.constant(labels, tf.int32)
    features, logits, first, spread = [], [], None, 0.0
    for start in range(0, n, opts.sample_batch_size):
        stop = min(n, start + opts.sample_batch_size)
        images = np.asarray(generate(z[start:stop], labels[start:stop]))
        if not np.isfinite(images).all():
            return "diverged", None, None
        first = images[0] if first is None else first
        spread = max(spread, float(np.max(np.abs(images - first))))
        # Not rounded to 8 bits (real images are, being stored so): compare_gan's protocol.
        f, l = network(images)
        if not (np.isfinite(f).all() and np.isfinite(l).all()):
            return "diverged", None, None
        features.append(f)
        logits.append(l)
    status = "collapsed" if spread < _COLLAPSE_TOLERANCE else "ok"
    return status, np.concatenate(features), np.concatenate(logits)


def set_scores(real_features, features, logits, status, opts):
    """FID, KID and IS of one fake set against the real features."""
    try:
        fid = metrics.fid_from_activations(real_features, features)
        kid, kid_se = metrics.kernel_inception_distance(real_features, features, opts.kid_max_block_size)
        score, score_std = metrics.inception_score_from_logits(logits, opts.inception_score_splits)
    except ValueError as e:
        if status == "ok":
            raise
        logging.warning("Metrics undefined for a %s generator: %s", status, e)
        return {"status": status, "fid": None, "kid": None, "kid_block_std": None,
                "inception_score": None, "inception_score_split_std": None}
    return {"status": status, "fid": fid, "kid": kid, "kid_block_std": kid_se,
            "inception_score": score, "inception_score_split_std": score_std}


def score_generated_sets(generate, prior, z_dim, num_classes, network, real_features, opts):
    """Per-set scores of `opts.num_fake_sets` sets drawn from `generate(z, labels)`."""
    per_set = []
    for index in range(opts.num_fake_sets):
        status, features, logits = generated_set(generate, network, prior, z_dim, num_classes, opts, index)
        if status == "diverged":
            return [{"status": "diverged"}]
        per_set.append(set_scores(real_features, features, logits, status, opts))
    return per_set


def combine_sets(per_set):
    """The record's status and the metrics' mean and std over the fake sets."""
    statuses = {s["status"] for s in per_set}
    status = "diverged" if "diverged" in statuses else "collapsed" if "collapsed" in statuses else "ok"
    combined = {"status": status}
    for name in ("fid", "kid", "inception_score"):
        mean, std = _mean_std([s.get(name) for s in per_set]) if status != "diverged" else (None, None)
        combined[name], combined[f"{name}_std"] = mean, std
    return combined


def summary_line(record):
    """One human-readable line of a record's metrics, each named by its feature network."""
    labels = record["metric_labels"]

    def fmt(name, digits):
        mean, std = record[name], record[f"{name}_std"]
        if mean is None:
            return f"{labels[name]} null"
        return f"{labels[name]} {mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")

    return f"{record['status']} | {fmt('fid', 3)} | {fmt('kid', 5)} | {fmt('inception_score', 3)}"


def run_description(trainer):
    """What is constant for a run (a training.Trainer): written beside every score."""
    t, gan, opts = trainer, trainer.gan, trainer.opts
    return {
        "model": gan.name,
        "tasks": [type(task).__name__ for task in getattr(gan, "tasks", [])],
        "adversarial_weight": getattr(gan, "adversarial_weight", None),
        "conditional": getattr(gan, "conditional", None),
        "architecture": gan.arch.name,
        "architecture_config": dataclasses.asdict(gan.arch),
        "loss": getattr(gan.loss_fn, "__name__", str(gan.loss_fn)),
        "penalty": getattr(gan.penalty_fn, "__name__", str(gan.penalty_fn)),
        "lambda": gan.penalty_weight,
        "beta1": opts.beta1, "beta2": opts.beta2, "disc_iters": opts.disc_iters,
        "g_lr": opts.g_lr, "d_lr": opts.d_lr, "batch_size": opts.batch_size,
        "training_steps": opts.training_steps, "ema_decay": opts.ema_decay, "seed": opts.seed,
        "dataset": t.data.name, "dataset_source": t.data.source_description,
        "model_dir": os.path.abspath(t.model_dir),
        "code_version": provenance.CODE_VERSION,
    }


# -- schedules ----------------------------------------------------------------------------------

def eval_after_train(trainer):
    """Trains (resuming if needed), then scores every checkpoint not yet scored.

    The evaluator (feature network, real statistics) is prepared first, so a bad evaluation
    config fails before hours of training. If training stops on a NaN loss, the checkpoints
    written before it are still scored, then the error is reported.
    """
    if not trainer.is_chief:
        return trainer.train()
    evaluator = Evaluator(trainer)
    try:
        trainer.train()
    except NaNLossError as e:
        logging.warning("Training stopped on a non-finite loss; scoring the checkpoints it kept.")
        evaluator.evaluate_pending()
        evaluator.record_divergence(e)
        raise
    evaluator.evaluate_pending()
    return read_scores(trainer.model_dir)


def continuous_eval(trainer, timeout_secs=None, poll_secs=None):
    """Scores each checkpoint as it appears; stops once options.training_steps is scored.

    Waits `continuous_eval.timeout_secs` at most for a new checkpoint, then raises UserError.
    If the trainer stopped on a NaN loss (training.STOPPED_FILE, its lock free), it records the
    divergence as eval_after_train does and stops at once; if a trainer seen running (the holder
    of the training lock, on this host) is gone before the final step, it stops with an error.
    """
    default_timeout, default_poll = continuous_eval_options()
    timeout_secs = default_timeout if timeout_secs is None else timeout_secs
    poll_secs = default_poll if poll_secs is None else poll_secs
    final = trainer.opts.training_steps
    evaluator = Evaluator(trainer)
    logging.info("Continuous evaluation of %s until step %d (%s).", trainer.checkpoint_dir, final,
                 evaluator.label)
    last_progress, trainer_seen = time.time(), False
    lock = os.path.join(trainer.model_dir, runner.TRAINING_LOCK)
    while True:
        # Read first: a trainer's checkpoints are all written before it stops or exits.
        stopped, alive = trainer.stopped(), locks.holder_alive(lock)
        trainer_seen = trainer_seen or bool(alive)
        if evaluator.evaluate_pending():
            last_progress = time.time()
        scored = evaluator.scored_steps()
        if final == 0 or any(step >= final for step in scored):
            logging.info("Step %d is scored; continuous evaluation done (%s).", final,
                         os.path.join(trainer.model_dir, SCORES_FILE))
            return read_scores(trainer.model_dir)
        if stopped:
            evaluator.record_divergence(NaNLossError(stopped.get("reason"), step=stopped.get("step")))
            raise NaNLossError(f"training in {trainer.model_dir} stopped: {stopped.get('reason')}\n"
                               f"continuous_eval scored the checkpoints it kept, recorded step "
                               f"{stopped.get('step')} as diverged in {SCORES_FILE}, and stops.",
                               step=stopped.get("step"))
        if trainer_seen and alive is False:
            raise UserError(f"the trainer of {trainer.model_dir} is gone (its process ended) before step "
                            f"{final}; last scored step: {max(scored, default=None)}. Resume it with its "
                            f"training command, then start continuous_eval again.")
        waited = time.time() - last_progress
        if waited >= timeout_secs:
            latest = max(scored, default=None)
            raise UserError(
                f"continuous_eval waited {waited:.0f}s (continuous_eval.timeout_secs={timeout_secs:g}) "
                f"without a new checkpoint in {trainer.checkpoint_dir}; last scored step: {latest}, "
                f"training_steps: {final}. Is training running (or did it stop with an error)? "
                f"Raise continuous_eval.timeout_secs to wait longer.")
        time.sleep(min(poll_secs, max(timeout_secs - waited, 0.01)))
