"""Scores a run's checkpoints (FID, KID, IS) into its scores file (eval/scores.py).

For each checkpoint: restore the sampling generator, draw `num_fake_sets` sets of `num_samples`
images with fixed latents (seeded by `eval_seed` and the set index, the same for every
checkpoint), run the feature network on them, and compare with the real activations of
`real_split` (the test split by default, as in the SS-GAN paper; eval/real_cache.py). FID/KID/IS
per set come from compare_ssgan.eval.metrics; the record holds their mean and sample standard
deviation (ddof=1; null for a single set) over the fake sets. Each of these settings changes the
numbers, so every record names them (`protocol`, results.PROTOCOL_FIELDS).

A generator whose samples are not finite is recorded with "status": "diverged" and null
metrics; one whose samples are all identical gets "status": "collapsed" (its metrics are still
computed: they are valid, and bad). A checkpoint whose files cannot be read (see
compare_ssgan.checkpoints) gets "status": "damaged", null metrics and a "reason", and the other
checkpoints are still scored. Healthy checkpoints have "status": "ok".

The Evaluator takes what it scores (a `Run`: the generator, the checkpoint that restores it,
the data, where the files are, how to describe the run), not a training.Trainer, so a generator
rebuilt without its trainer scores through the same code; `Run.from_trainer` is the usual way
to get one. The per-set functions below are shared with compare_ssgan.evaluate.
"""
import dataclasses
import datetime
import math
import os
import time

import gin
import numpy as np
import tensorflow as tf
from absl import logging

from compare_ssgan import architectures, checkpoints, environment, graphs, provenance, results, xla
from compare_ssgan.errors import UserError
from compare_ssgan.eval import feature_networks, metrics
from compare_ssgan.eval.options import evaluation_options
from compare_ssgan.eval.real_cache import real_activations
from compare_ssgan.eval.scores import append_score, json_safe, metric_labels, read_scores, summary_line

_COLLAPSE_TOLERANCE = 1e-6  # the largest per-pixel range over a whole fake set, in [-1, 1] units: identical
# to float32 precision (a freshly initialised N(0, 0.02) generator at test widths already varies by ~5e-5)
STD_NOTE = "std over fake sets (ddof=1); null with one set"


@dataclasses.dataclass(frozen=True)
class Run:
    """What an Evaluator needs of a run, and nothing more."""
    model_dir: str       # where the scores file is written
    checkpoint_dir: str  # where its checkpoints are listed (compare_ssgan.checkpoints)
    data: object         # datasets.Dataset: the real images and the number of classes
    generator: object    # the sampling generator: generator(z, labels, training=False) -> images
    prior: object        # architectures.ArchitectureConfig: z_dim and z_prior, for sample_latents
    checkpoint: tf.train.Checkpoint  # restore(path) sets `generator`'s variables and `step`
    step: tf.Variable    # the restored checkpoint's step
    description: dict    # what every record says about the run (see `run_description`)
    jit_compile: bool = False  # XLA for generation and feature extraction (options.jit_compile)

    @classmethod
    def from_trainer(cls, trainer):
        """A training.Trainer's run: its EMA generator if it has one, else G."""
        gan = trainer.gan
        return cls(trainer.model_dir, trainer.checkpoint_dir, trainer.data, gan.sampling_generator, gan.arch,
                   trainer.checkpoint, trainer.step, run_description(trainer), trainer.opts.jit_compile)


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


def untracked_variables(checkpoint, model):
    """Paths of `model`'s variables that `checkpoint` does not save (e.g. Keras 3 layers kept
    in a Python list are invisible to tf.train.Checkpoint unless reached another way)."""
    tracked = {id(x) for x in tf.train.TrackableView(checkpoint).descendants()}
    return [w.path for w in model.weights if id(w) not in tracked]


def protocol(network, opts, real_split, num_real_samples):
    """How a generator was scored: the fields every record carries, in this order."""
    return {
        "fid_label": network.info.label,  # e.g. "FID (CIFAR-10 classifier)"
        "metric_labels": metric_labels(network.info.label),
        "feature_network": network.info.as_dict(),
        "num_samples": opts.num_samples,
        "num_real_samples": int(num_real_samples),
        "num_fake_sets": opts.num_fake_sets,
        "real_split": real_split,
        "eval_seed": opts.eval_seed,
        "kid_max_block_size": opts.kid_max_block_size,
        "inception_score_splits": opts.inception_score_splits,
        "std_note": STD_NOTE,
    }


class Evaluator:
    """Scores checkpoints of one run (a `Run`) with one feature network."""

    def __init__(self, run, options=None):
        self.run = run
        self.opts = options or evaluation_options()
        self.model_dir = run.model_dir
        data = run.data
        self.real_split = self.opts.real_split or data.info.eval_split
        valid_splits = (data.info.train_split, data.info.eval_split)
        if self.real_split not in valid_splits:
            raise UserError(f"unknown evaluation.real_split {self.real_split!r}; valid: "
                            f"{', '.join(valid_splits)}")
        self.network = feature_networks.build(self.opts.feature_network)
        if self.network.info.name == "cifar10_classifier" and data.name != "cifar10":
            logging.warning("Scoring %s images with the CIFAR-10 classifier (images resized to 32x32): "
                            "its numbers only compare runs on %s with each other.", data.name, data.name)
        self.label = self.network.info.label
        self.real_features, self.real_logits = real_activations(
            data, self.real_split, self.network, self.opts.num_samples)
        generator = run.generator
        self._embed = generator_embedder(generator, self.network, run.jit_compile)
        self.untracked = untracked_variables(run.checkpoint, generator)
        if self.untracked:
            logging.warning(
                "%d of the sampling generator's %d variables are not in the run's checkpoints (%s%s): "
                "evaluating a checkpoint keeps their in-memory values, so scores may be wrong. "
                "Every record names them under 'warnings'.", len(self.untracked), len(generator.weights),
                ", ".join(self.untracked[:4]), ", ..." if len(self.untracked) > 4 else "")

    def evaluate(self, path):
        """Scores the checkpoint at `path`; returns the record (not yet written)."""
        start = time.time()
        try:
            # Every object must get values: e.g. an EMA generator evaluated from a run trained
            # without EMA would otherwise be scored with its random initial weights.
            self.run.checkpoint.restore(path).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:
            reason = checkpoints.damage(path)
            if reason is not None and tf.io.gfile.exists(path + ".index"):  # else: deleted, not damaged
                return self._damaged(path, reason, start)
            raise UserError(f"cannot restore checkpoint {path} for evaluation: {type(e).__name__}: "
                            f"{str(e).splitlines()[0][:300]}. If the gin config changed since "
                            f"training, evaluate with the original config.") from e
        step = int(self.run.step.numpy())
        per_set = score_generated_sets(self._embed, self.run.prior, self.run.data.num_classes,
                                       self.real_features, self.opts)
        combined = combine_sets(per_set)
        record = results.score_header("checkpoint", step, os.path.basename(path), combined.pop("status"))
        record.update(combined)
        record.update(self._context(), per_set=per_set, eval_seconds=round(time.time() - start, 2))
        results.validate(json_safe(record), f"the score of {path}")
        return record

    def _damaged(self, path, reason, start):
        """The record of a checkpoint whose files cannot be read: null metrics, the reason;
        scoring goes on with the other checkpoints (the files are left where they are)."""
        logging.warning("Checkpoint %s is damaged (%s): recording it as such and going on.", path, reason)
        return self._unscored("checkpoint", checkpoints.step_of(path), os.path.basename(path), "damaged", reason,
                              round(time.time() - start, 2))

    def _unscored(self, origin, step, checkpoint, status, reason, seconds):
        """A validated record with null metrics and the reason (a damaged checkpoint, a divergence)."""
        record = {**results.score_header(origin, step, checkpoint, status), "reason": reason}
        for name in ("fid", "kid", "inception_score"):
            record[name] = record[f"{name}_std"] = None
        record.update(self._context(), per_set=[], eval_seconds=seconds)
        results.validate(json_safe(record), f"the {status} record of {checkpoint or self.model_dir}")
        return record

    def _context(self):
        """What every record of this evaluator carries: the protocol, the run, when."""
        return {
            **protocol(self.network, self.opts, self.real_split, len(self.real_features)),
            "warnings": ([f"{len(self.untracked)} sampling-generator variables are not saved in "
                          f"checkpoints and kept their in-memory values: {', '.join(self.untracked)}"]
                         if self.untracked else []),
            **self.run.description,
            # Read now, not with the description: eval_after_train describes the run before training.
            "training_environment": environment.training_environments(self.run.model_dir),
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "gin_config": gin.operative_config_str(),
        }

    def record_divergence(self, error):
        """Appends a 'diverged' record (null metrics) at the step where training hit a non-finite
        loss, so tables count the run as diverged even if it died before its first checkpoint."""
        append_score(self.model_dir, self._unscored("training", error.step, None, "diverged", str(error), 0.0))

    def _log(self, record):
        logging.info("step %d | %s | %d set(s) x %d samples vs %s split | %.1fs", record["step"],
                     summary_line(record), record["num_fake_sets"], record["num_samples"],
                     record["real_split"], record["eval_seconds"])

    def scored_steps(self):
        mine = results.score_key({"step": None, "checkpoint": "any", "feature_network": self.network.info.as_dict(),
                                  "num_samples": self.opts.num_samples, "num_fake_sets": self.opts.num_fake_sets,
                                  "real_split": self.real_split, "eval_seed": self.opts.eval_seed})[1:]
        return {r["step"] for r in read_scores(self.model_dir) if results.score_key(r)[1:] == mine}

    def evaluate_pending(self):
        """Scores every committed checkpoint not yet in the scores file; returns the steps written."""
        written = []
        for step, path in checkpoints.listed(self.run.checkpoint_dir)[0]:
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


# -- one generator's fake sets (shared with compare_ssgan.evaluate) ------------------------------

def set_embedder(generate, network, jit_compile=False):
    """One compiled call per batch of latents: generate, embed with the feature network, and
    reduce what the status needs, all on the device. `generate(z, labels)` must be traceable (a
    Keras model, a tf.function or a SavedModel signature). Returns
    embed(z, labels) -> (features, logits, all finite?, per-pixel max, per-pixel min)."""
    def embed(z, labels):
        images = tf.cast(generate(z, labels), tf.float32)
        images.set_shape([z.shape[0], None, None, None])  # static, from z (a SavedModel may not say)
        features, logits = network.embed(images)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in (images, features, logits)])
        return features, logits, finite, tf.reduce_max(images, 0), tf.reduce_min(images, 0)

    # Static batch sizes (one trace for the full batches, one for a last partial one): XLA and
    # the split into the network's batches need them.
    compiled = graphs.function(embed, jit_compile=bool(jit_compile))
    if not jit_compile:
        return compiled

    def embed_or_explain(z, labels):
        try:
            return compiled(z, labels)
        except xla.COMPILE_ERRORS as e:
            error = xla.compile_error(e, "evaluation's generator and feature network",
                                      "Set options.jit_compile=False (compare_ssgan.evaluate: --nojit_compile).")
            if error is None:
                raise
            raise error from e

    return embed_or_explain


def generator_embedder(generator, network, jit_compile=False):
    """set_embedder for a Keras generator, run in inference mode (BN's moving statistics)."""
    return set_embedder(lambda z, y: generator(z, y, training=False), network, jit_compile)


def generated_set(embed, prior, num_classes, opts, index):
    """Features and logits (numpy) of fake set `index`, with a status: 'ok' | 'collapsed' |
    'diverged'. `embed` is a `set_embedder`; `prior` is what architectures.sample_latents reads
    (z_dim and z_prior). The set's activations, finiteness and pixel range accumulate on the
    device and reach the host once per set, not once per batch (the first batch's finiteness
    excepted, so that a diverged generator is reported without generating its whole set)."""
    n = opts.num_samples
    z = architectures.sample_latents(prior, [n, prior.z_dim], [opts.eval_seed, index])
    # Balanced labels in a seeded random order (only conditional generators read them).
    labels = np.random.default_rng([opts.eval_seed, index]).permutation(np.arange(n) % num_classes)
    labels = tf.constant(labels, tf.int32)
    features, logits, finite, high, low = [], [], [], None, None
    for start in range(0, n, opts.sample_batch_size):
        stop = min(n, start + opts.sample_batch_size)
        f, l, ok, batch_high, batch_low = embed(z[start:stop], labels[start:stop])
        if start == 0 and not bool(ok):  # a diverged generator is usually non-finite everywhere:
            return "diverged", None, None  # stop at its first batch, not after the whole set
        features.append(f)
        logits.append(l)
        finite.append(ok)
        high = batch_high if high is None else tf.maximum(high, batch_high)
        low = batch_low if low is None else tf.minimum(low, batch_low)
    if not bool(tf.reduce_all(finite)):
        return "diverged", None, None
    # Not rounded to 8 bits (real images are, being stored so): compare_gan's protocol.
    spread = float(tf.reduce_max(high - low))
    status = "collapsed" if spread < _COLLAPSE_TOLERANCE else "ok"
    return status, tf.concat(features, 0).numpy(), tf.concat(logits, 0).numpy()


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


def score_generated_sets(embed, prior, num_classes, real_features, opts):
    """Per-set scores of `opts.num_fake_sets` sets drawn through `embed` (a `set_embedder`)."""
    per_set = []
    for index in range(opts.num_fake_sets):
        status, features, logits = generated_set(embed, prior, num_classes, opts, index)
        if status == "diverged":
            return [{"status": "diverged"}]
        per_set.append(set_scores(real_features, features, logits, status, opts))
    return per_set


def _mean_std(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    mean = float(np.mean(values))
    return mean, (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def combine_sets(per_set):
    """The record's status and the metrics' mean and std over the fake sets."""
    statuses = {s["status"] for s in per_set}
    status = "diverged" if "diverged" in statuses else "collapsed" if "collapsed" in statuses else "ok"
    combined = {"status": status}
    for name in ("fid", "kid", "inception_score"):
        mean, std = _mean_std([s.get(name) for s in per_set]) if status != "diverged" else (None, None)
        combined[name], combined[f"{name}_std"] = mean, std
    return combined
