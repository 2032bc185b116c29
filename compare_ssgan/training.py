"""The distributed training loop: steps under a strategy, checkpoints, summaries, samples.

`training_steps` counts generator updates; each one is preceded by `disc_iters` D updates,
each on a fresh real batch. Resuming restores the step, and the input pipeline skips exactly
the examples already consumed, so a resumed run sees the same data as an uninterrupted one.
"""
import contextlib
import dataclasses
import json
import math
import os
import time

import gin
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from compare_ssgan import (architectures, checkpoints, config_contract, datasets, disk, distribute, environment,
                           graphs, locks, runner, xla)
from compare_ssgan.errors import NaNLossError, UserError
from compare_ssgan.gans.model import GANModel

CHECKPOINT_SUBDIR = "checkpoints"
STOPPED_FILE = "training_stopped.json"  # {"step", "reason"} of a training stopped by a NaN loss
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# Consecutive train-loop calls with non-finite metrics that a mixed_float16 run survives: each
# skipped step halves the loss scale (2**15 at the start), so 20 reach a scale below 1.
FLOAT16_PATIENCE = 20


@dataclasses.dataclass(frozen=True)
class Options:
    training_steps: int
    batch_size: int
    seed: int
    disc_iters: int
    g_lr: float
    d_lr: float
    beta1: float
    beta2: float
    ema_decay: float | None
    ema_start_step: int
    log_every: int
    save_every: int
    sample_every: int
    keep_checkpoints: int
    deterministic: bool
    steps_per_loop: int = 1
    jit_compile: bool = False
    precision: str = "float32"


@gin.configurable
def options(training_steps=100_000, batch_size=64, seed=0, disc_iters=1, g_lr=2e-4, d_lr=2e-4,
            beta1=0.0, beta2=0.9, ema_decay=None, ema_start_step=0, log_every=100, save_every=5000,
            sample_every=5000, keep_checkpoints=1000, deterministic=False, steps_per_loop=1,
            jit_compile=False, precision="float32"):
    """Run-level settings. `batch_size` is global (split across replicas); `deterministic`
    turns on TensorFlow's op determinism (slower) for bit-reproducible runs; the EMA generator
    (`ema_decay`) copies G until `ema_start_step` generator steps (BigGAN-PyTorch's --ema_start).

    Speed (see README, "Speed options"): `steps_per_loop` generator steps run inside one
    tf.function call and metrics reach the host once per call (logged metrics are the means over
    the call's steps), so log/save/sample intervals must be multiples of it; `jit_compile`
    compiles each replica's D and G step with XLA; `precision` is a Keras mixed-precision policy."""
    whole = {name: _whole("options." + name, value) for name, value in (
        ("training_steps", training_steps), ("batch_size", batch_size), ("seed", seed),
        ("disc_iters", disc_iters), ("log_every", log_every), ("save_every", save_every),
        ("sample_every", sample_every), ("keep_checkpoints", keep_checkpoints),
        ("ema_start_step", ema_start_step), ("steps_per_loop", steps_per_loop))}
    real = {name: _real("options." + name, value) for name, value in (
        ("g_lr", g_lr), ("d_lr", d_lr), ("beta1", beta1), ("beta2", beta2))}
    if whole["training_steps"] < 0 or whole["batch_size"] < 1 or whole["disc_iters"] < 1:
        raise UserError("options.training_steps must be >= 0, batch_size and disc_iters >= 1")
    if whole["steps_per_loop"] < 1:
        raise UserError(f"options.steps_per_loop must be an integer >= 1 (got {steps_per_loop!r})")
    loop = whole["steps_per_loop"]
    for name in ("log_every", "save_every", "sample_every"):
        every = whole[name]
        if every < 1:
            raise UserError(f"options.{name} must be >= 1 (got {every})")
        if every % loop:
            raise UserError(f"options.{name}={every} is not a multiple of options.steps_per_loop="
                            f"{loop}: logs, samples and checkpoints happen between loops. "
                            f"Set options.{name} to a multiple of {loop} (e.g. "
                            f"{-(-every // loop) * loop}) or lower steps_per_loop.")
    for name, value in (("deterministic", deterministic), ("jit_compile", jit_compile)):
        if not isinstance(value, bool):
            raise UserError(f"options.{name} must be True or False (got {value!r})")
    if precision not in PRECISIONS:
        raise UserError(f"options.precision must be one of {', '.join(map(repr, PRECISIONS))} (got {precision!r})")
    return Options(ema_decay=None if ema_decay is None else _real("options.ema_decay", ema_decay),
                   deterministic=deterministic, jit_compile=jit_compile, precision=str(precision),
                   **whole, **real)


def _whole(name, value):
    """`value` as an int; a UserError for text, or a fraction that int() would truncate."""
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 1e5
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name} must be a whole number (got {value!r}); set e.g. "
                        f"--gin_param=\"{name}=1000\"")
    return value


def _real(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{name} must be a number (got {value!r}); set e.g. --gin_param=\"{name}=0.0002\"")
    return float(value)


def _format_duration(seconds):
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _atomic_write(path, data):
    tmp = f"{path}.tmp"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def image_grid(images, columns=8):
    """[N, H, W, C] in [-1, 1] -> one uint8 [rows*H, columns*W, C] grid."""
    images = np.clip((np.asarray(images) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    n, h, w, c = images.shape
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * h, columns * w, c), np.uint8)
    for i, image in enumerate(images):
        r, k = divmod(i, columns)
        grid[r * h:(r + 1) * h, k * w:(k + 1) * w] = image
    return grid


@contextlib.contextmanager
def precision_policy(name):
    """Keras' global dtype policy while networks are built: layers keep the policy they were
    built with, and later builds in this process (evaluation, probes) get float32 again."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _check_xla_devices(strategy, jit_compile):
    """XLA places a replica's cluster on one CPU device and cannot reach variables mirrored on
    another logical CPU ("Trying to access resource ... located in device CPU:1";
    tensorflow.org/xla/known_issues#tfvariable_on_a_different_device)."""
    devices = strategy.extended.worker_devices if jit_compile and strategy.num_replicas_in_sync > 1 else ()
    if sum("CPU" in d.upper() for d in devices) > 1:
        raise UserError("options.jit_compile=True does not work with replicas on logical CPU "
                        "devices (strategy.logical_cpus): XLA cannot read variables placed on "
                        "another logical CPU. Set options.jit_compile=False, or run mirrored on GPUs.")


class Trainer:
    """Owns one run's model, strategy, checkpoints and outputs under `model_dir`."""

    def __init__(self, model_dir, strategy):
        self.model_dir, self.strategy = model_dir, strategy
        self.opts = options()
        if self.opts.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(self.opts.seed)
        self.data = datasets.Dataset()
        arch = architectures.architecture()
        replicas = strategy.num_replicas_in_sync
        if self.opts.batch_size % replicas:
            raise UserError(f"options.batch_size={self.opts.batch_size} must be divisible by the "
                            f"{replicas} replicas of strategy {type(strategy).__name__}")
        _check_xla_devices(strategy, self.opts.jit_compile)  # before building anything
        with strategy.scope(), precision_policy(self.opts.precision):
            self.gan = GANModel(arch, self.data.image_shape, self.data.num_classes,
                                self.opts.batch_size, replicas, self.opts.g_lr, self.opts.d_lr,
                                self.opts.beta1, self.opts.beta2, self.opts.ema_decay, self.opts.ema_start_step)
            self.step = self.gan.step  # the generator step; tasks and the EMA read it
            self.checkpoint = tf.train.Checkpoint(step=self.step, **self.gan.trackables())
        self.task, self.is_chief = distribute.worker_info(strategy)
        self.checkpoint_dir = os.path.join(model_dir, CHECKPOINT_SUBDIR)
        # Every worker must save; only the chief's copy is kept (tf.distribute's convention).
        # Other workers keep one throwaway copy, removed when training ends.
        self.save_dir = self.checkpoint_dir if self.is_chief else os.path.join(model_dir, f".tmp_{self.task}")
        self._manager = None
        if checkpoints.listed(self.checkpoint_dir)[0]:  # resuming: is it the same experiment?
            config_contract.check(model_dir, gin.operative_config_str())
        logging.info("Parameters: generator %s, discriminator %s (%s, %s)",
                     f"{architectures.parameter_count(self.gan.generator):,}",
                     f"{architectures.parameter_count(self.gan.discriminator):,}",
                     arch.name, self.data.source_description)

    # -- checkpoints -------------------------------------------------------------------------

    def restore(self):
        """Restores the newest checkpoint that can be read, if any; returns its step (0 for a
        fresh run). Newer damaged ones are moved aside (see compare_ssgan.checkpoints)."""
        found, state_problem = checkpoints.listed(self.checkpoint_dir)
        if not found:
            if state_problem:
                raise UserError(f"{state_problem}, and {self.checkpoint_dir} holds no ckpt-<step>.index "
                                f"file to resume from. Restore the checkpoint files, or move "
                                f"{self.checkpoint_dir} aside to start this run over.")
            logging.info("No checkpoint in %s: starting a new run at step 0.", self.checkpoint_dir)
            return 0
        skipped = []
        for _, path in reversed(found):
            try:
                # A failed attempt may have assigned some variables; the next successful restore
                # assigns every one (assert_existing_objects_matched), so nothing stays mixed.
                self.checkpoint.restore(path).assert_existing_objects_matched()
                break
            except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:
                reason = checkpoints.damage(path)
                if reason is None:  # readable, but not this model: the config changed
                    raise UserError(
                        f"cannot restore checkpoint {path}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:300]}\nIts files are intact, so the gin config "
                        f"differs from the one that wrote it: use the original config "
                        f"({os.path.join(self.model_dir, config_contract.CONFIG_FILE)}) or a new "
                        f"--model_dir.") from e
                skipped.append((path, reason))
        else:
            path = None
        if skipped or state_problem:
            self._set_aside(found, skipped, state_problem, restored=path)
        if path is None:
            raise UserError(f"no checkpoint in {self.checkpoint_dir} can be read (damaged: "
                            + "; ".join(f"{os.path.basename(p)}: {r}" for p, r in skipped)
                            + "). Their files were moved aside, not deleted. Run the same command "
                            "again to start this run over from step 0.")
        step = int(self.step.numpy())
        logging.info("Resuming from %s at step %d.", path, step)
        return step

    def _set_aside(self, found, skipped, state_problem, restored):
        """Moves damaged checkpoints aside, rewrites the state file, logs why (chief only:
        other workers only read the chief's directory)."""
        names = ", ".join(f"{os.path.basename(p)} ({r})" for p, r in skipped)
        if not self.is_chief:
            logging.warning("Skipped damaged checkpoint(s) %s.", names or "none")
            return
        damaged = {p for p, _ in skipped}
        kept = [p for _, p in found if p not in damaged]
        folder = checkpoints.set_aside(self.checkpoint_dir, damaged,
                                       state_file_too=state_problem is not None or not kept)
        if kept:
            checkpoints.write_state(self.checkpoint_dir, kept)
        self._manager = None  # re-read the state file
        logging.warning("%sDamaged checkpoint(s) skipped: %s. Their files (and any unreadable state file) "
                        "were moved to %s, not deleted; resuming from %s.",
                        f"{state_problem}: listed the ckpt-*.index files instead. " if state_problem else "",
                        names or "none", folder, restored and os.path.basename(restored))

    @property
    def manager(self):
        """Built on first use: restore() may first have to repair the state file it reads."""
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self.checkpoint, self.save_dir,
                max_to_keep=self.opts.keep_checkpoints if self.is_chief else 1)
        return self._manager

    def save(self, step):
        with disk.no_space_is_a_user_error(f"checkpoint ckpt-{step}", self.save_dir):
            self.manager.save(checkpoint_number=step)

    # -- the step ---------------------------------------------------------------------------

    def make_iterator(self, start_step):
        """The distributed input, positioned after what `start_step` steps consumed."""
        consumed = start_step * self.opts.disc_iters * self.opts.batch_size
        dataset = self.data.train_input(self.opts.batch_size, self.opts.seed, skip_examples=consumed)
        return iter(self.strategy.experimental_distribute_dataset(dataset))

    def build_train_step(self):
        """tf.function(iterator, num_steps) running `num_steps` generator steps (each: disc_iters
        D steps and one G step) in one call; returns each metric's mean over those steps,
        reduced across replicas on device. A non-finite value in any step makes the mean
        non-finite, so the host's NaN check still sees it. The step is traced without AutoGraph
        (compare_ssgan/graphs.py); the loop around it keeps AutoGraph for its tf.range."""
        gan, strategy, opts = self.gan, self.strategy, self.opts
        d_step, g_step = gan.d_step, gan.g_step
        if opts.jit_compile:
            d_step = graphs.function(d_step, jit_compile=True)
            g_step = graphs.function(g_step, jit_compile=True)

        def one_step(iterator):
            base_seed = tf.stack([tf.constant(opts.seed, tf.int64), self.step.read_value()])
            d_metrics = []
            labels = None
            for i in range(opts.disc_iters):
                images, labels = next(iterator)
                seed = tf.random.experimental.stateless_fold_in(base_seed, i)
                d_metrics.append(strategy.run(d_step, args=(images, labels, seed)))
            seed = tf.random.experimental.stateless_fold_in(base_seed, opts.disc_iters)
            g_metrics = strategy.run(g_step, args=(labels, seed))
            gan.update_ema()
            self.step.assign_add(1)
            mean = lambda v: tf.cast(strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None),  # noqa: E731
                                     tf.float32)
            # D metrics: the mean over this step's disc_iters D updates.
            metrics = {k: tf.add_n([mean(m[k]) for m in d_metrics]) / opts.disc_iters for k in d_metrics[0]}
            metrics.update({k: mean(v) for k, v in g_metrics.items()})
            return metrics

        if opts.steps_per_loop == 1:
            # One step per call (the default): the step is traced straight into the call's graph.
            # Wrapping it in the loop below (a while loop around a nested function) cost about a
            # third more tracing time per run (smoke SS-GAN: 22.2 s vs 18.7 s to the first log
            # on a 2-core CPU; benchmarks/results/throughput_matrix_cpu.md has the step times).
            @graphs.function
            def single_step(iterator, num_steps):
                del num_steps  # always 1: the training loop never asks for more than steps_per_loop
                return one_step(iterator)

            return single_step

        # Traced once: its metrics' names (needed before the loop) come from that trace, and the
        # loop body calls the same traced function (tracing the step again would double the
        # start-up time of every run).
        step_fn = graphs.function(one_step)

        @tf.function
        def train_loop(iterator, num_steps):
            names = sorted(step_fn.get_concrete_function(iterator).structured_outputs)
            totals = {k: tf.zeros([], tf.float32) for k in names}
            # The loop stays in the graph (tf.while_loop): one host round trip per call.
            for _ in tf.range(num_steps):
                metrics = step_fn(iterator)
                totals = {k: totals[k] + metrics[k] for k in names}
            return {k: v / tf.cast(num_steps, tf.float32) for k, v in totals.items()}

        return train_loop

    def _run(self, train_step, iterator, num_steps):
        """One call of the train loop; an XLA compile failure becomes a UserError naming the op,
        and a Python branch on a tensor one naming its line (graphs.branch_error)."""
        try:
            return train_step(iterator, tf.constant(num_steps, tf.int32))
        except graphs.BRANCH_ERRORS as e:
            raise graphs.branch_error(e, "the train step") from e
        except xla.COMPILE_ERRORS as e:
            error = xla.compile_error(e, "this configuration's train step", "Set options.jit_compile=False, "
                                      "or replace the layer or penalty that uses the op.") \
                if self.opts.jit_compile else None
            if error is None:
                raise
            raise error from e

    # -- outputs ----------------------------------------------------------------------------

    def write_samples(self, step, num=64):
        z = architectures.sample_latents(self.gan.arch, [num, self.gan.arch.z_dim], [self.opts.seed, 2**20])
        labels = tf.range(num, dtype=tf.int32) % self.data.num_classes
        images = self.gan.sampling_generator(z, labels, training=False)
        path = os.path.join(self.model_dir, "samples", f"step_{step:06d}.png")
        with disk.no_space_is_a_user_error(f"sample grid {os.path.basename(path)}", os.path.dirname(path)):
            tf.io.gfile.makedirs(os.path.dirname(path))
            _atomic_write(path, tf.io.encode_png(image_grid(images)).numpy())
        return path

    def record_stop(self, error):
        """Leaves STOPPED_FILE for a NaNLossError: a continuous_eval beside this trainer then
        records the divergence and stops instead of waiting for checkpoints that never come."""
        if self.is_chief:
            _atomic_write(os.path.join(self.model_dir, STOPPED_FILE),
                          json.dumps({"step": error.step, "reason": str(error)}).encode())

    def stopped(self):
        """{"step", "reason"} if this run's training stopped on a NaN loss and no trainer has
        taken it up since (the training lock's holder is gone), else None."""
        path = os.path.join(self.model_dir, STOPPED_FILE)
        if not os.path.exists(path) or locks.holder_alive(os.path.join(self.model_dir, runner.TRAINING_LOCK)):
            return None
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def train(self):
        opts = self.opts
        if self.is_chief and os.path.exists(os.path.join(self.model_dir, STOPPED_FILE)):
            os.remove(os.path.join(self.model_dir, STOPPED_FILE))  # a status, superseded by this attempt
        start = self.restore()
        if self.is_chief:
            with disk.no_space_is_a_user_error(config_contract.CONFIG_FILE, self.model_dir):
                _atomic_write(os.path.join(self.model_dir, config_contract.CONFIG_FILE),
                              gin.operative_config_str().encode())
        if start >= opts.training_steps:
            logging.info("Already trained to step %d (training_steps=%d); nothing to do.",
                         start, opts.training_steps)
            return start
        if self.is_chief:
            environment.record_session(self.model_dir, self.strategy, start, opts.training_steps, opts.precision,
                                       opts.jit_compile)
        iterator = self.make_iterator(start)
        train_step = self.build_train_step()
        writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "train")) if self.is_chief else None
        last_time, last_step = time.time(), start
        logging.info("Training steps %d -> %d (batch %d over %d replica(s), disc_iters %d).", start,
                     opts.training_steps, opts.batch_size, self.strategy.num_replicas_in_sync, opts.disc_iters)
        step, overflows = start, 0
        while step < opts.training_steps:
            # Up to the next multiple of steps_per_loop (a resumed run may start off one).
            n = min(opts.steps_per_loop - step % opts.steps_per_loop, opts.training_steps - step)
            try:
                metrics = {k: float(v) for k, v in self._run(train_step, iterator, n).items()}
            except tf.errors.InvalidArgumentError as e:  # e.g. an undecodable image
                self.data.check_decodable(self.data.info.train_split, e)
                raise
            step += n
            bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
            overflows = overflows + 1 if bad else 0
            if bad and opts.precision == "mixed_float16" and overflows <= FLOAT16_PATIENCE:
                # Under dynamic loss scaling an overflowing step is skipped (no update) and the
                # scale halved; only a loss that stays non-finite is a diverged run.
                logging.warning("non-finite metrics at step %d under mixed_float16 (%s): the loss "
                                "scale skipped the update; %d/%d in a row allowed.", step,
                                ", ".join(sorted(bad)), overflows, FLOAT16_PATIENCE)
                bad = {}
            if bad:
                kept = tf.train.latest_checkpoint(self.checkpoint_dir) or "none (no checkpoint was written yet)"
                error = NaNLossError(
                    f"non-finite loss at generator step {step}"
                    + (f" (metrics are means over steps {step - n + 1}-{step})" if n > 1 else "") + ": "
                    + ", ".join(f"{k}={v}" for k, v in bad.items())
                    + f". Training stopped without saving; last good checkpoint: {kept}. "
                    "Try lower learning rates, a penalty, or spectral norm.", step=step)
                self.record_stop(error)
                raise error
            done = step == opts.training_steps
            if step % opts.log_every == 0 or done:
                now = time.time()
                rate = (step - last_step) / max(now - last_time, 1e-9)
                last_time, last_step = now, step
                eta = _format_duration((opts.training_steps - step) / rate) if rate > 0 else "?"
                logging.info("step %d/%d | %s | %.2f steps/s | ETA %s", step, opts.training_steps,
                             " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())), rate, eta)
                if writer:
                    with writer.as_default(step=step):
                        for k, v in metrics.items():
                            tf.summary.scalar(k, v)
                        tf.summary.scalar("steps_per_second", rate)
                    writer.flush()
            if self.is_chief and (step % opts.sample_every == 0 or done):
                self.write_samples(step)
            if step % opts.save_every == 0 or done:
                self.save(step)
        if not self.is_chief:
            tf.io.gfile.rmtree(self.save_dir)
        logging.info("Training done at step %d; checkpoints in %s.", step, self.checkpoint_dir)
        return step
