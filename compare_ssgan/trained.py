"""A trained run's generator at one checkpoint, for the generate, export and evaluate commands.

The run is rebuilt from its own <model_dir>/operative_config.gin (every binding it trained
with) into a `training.Trainer` under the default strategy, and one checkpoint is restored into
it exactly as the training-time evaluator does, so every tool sees the same generator: the EMA
generator when the run has one (`options.ema_decay`), else G, called in inference mode (BN
moving statistics, no spectral-norm power iteration).
"""
import dataclasses
import os

import gin
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from compare_ssgan import architectures, checkpoints, config_contract, graphs
from compare_ssgan.errors import UserError



@dataclasses.dataclass
class TrainedGenerator:
    trainer: object          # training.Trainer: the run's config, data description and networks
    model_dir: str
    step: int
    checkpoint: str          # path prefix of the restored checkpoint
    image_folder: str | None  # the run's dataset.image_folder binding (None: tfds)
    standing_statistics: dict | None = None  # set by `standing_statistics`

    @property
    def generator(self):
        return self.trainer.gan.sampling_generator

    @property
    def is_ema(self):
        return self.trainer.gan.ema_generator is not None

    @property
    def arch(self):
        return self.trainer.gan.arch

    @property
    def num_classes(self):
        return self.trainer.data.num_classes

    @property
    def conditional(self):
        return bool(self.trainer.gan.conditional)

    @property
    def image_shape(self):
        return tuple(self.trainer.data.image_shape)

    def generate(self, z, labels):
        """Images (float32 [N, H, W, C] in [-1, 1]) in inference mode; labels are ignored by
        unconditional generators."""
        if not hasattr(self, "_generate"):
            generator = self.generator
            self._generate = graphs.function(lambda z, y: generator(z, y, training=False), reduce_retracing=True)
        return self._generate(tf.convert_to_tensor(z, tf.float32), tf.convert_to_tensor(labels, tf.int32))

    def describe(self):
        """What names this generator in the files the tools write."""
        from compare_ssgan import provenance

        return {"model_dir": os.path.abspath(self.model_dir), "step": self.step,
                "checkpoint": os.path.basename(self.checkpoint),
                "generator": "ema_generator" if self.is_ema else "generator",
                "standing_statistics": self.standing_statistics,
                "z_dim": self.arch.z_dim, "z_prior": self.arch.z_prior,
                "conditional": self.conditional, "num_classes": self.num_classes,
                "image_shape": list(self.image_shape), "dataset": self.trainer.data.name,
                "code_version": provenance.CODE_VERSION}


def _query(name):
    try:
        return gin.query_parameter(name)
    except ValueError:
        return None


def load(model_dir, step=None):
    """The run in `model_dir` with the checkpoint of `step` restored (None: the latest)."""
    from compare_ssgan import cli, training

    if not model_dir or not os.path.isdir(model_dir):
        raise UserError(f"--model_dir={model_dir} is not a directory. Pass the --model_dir a training "
                        f"run wrote (e.g. runs/ssgan_mini).")
    config = os.path.join(model_dir, config_contract.CONFIG_FILE)
    if not os.path.isfile(config):
        raise UserError(f"{model_dir} is not a training run: it has no {config_contract.CONFIG_FILE} (written when "
                        f"training starts). Pass the --model_dir given to compare_ssgan.main.")
    found = dict(checkpoints.listed(os.path.join(model_dir, training.CHECKPOINT_SUBDIR))[0])
    if not found:
        raise UserError(f"{model_dir} has no checkpoints yet ({training.CHECKPOINT_SUBDIR}/ is empty or "
                        f"missing); train it first, or wait for its first checkpoint.")
    if step is None:
        step = max(found)
    elif step not in found:
        raise UserError(f"{model_dir} has no checkpoint at step {step}; its checkpoints are at steps "
                        f"{', '.join(str(s) for s in sorted(found))}.")
    gin.clear_config()
    cli.parse_gin([config], [])
    # The run's images are not needed to rebuild its networks (their shape comes from the
    # dataset's name), and a relative image folder may not resolve from here.
    image_folder = _query("dataset.image_folder")
    with gin.unlock_config():
        gin.bind_parameter("dataset.image_folder", None)
    trainer = training.Trainer(model_dir, tf.distribute.get_strategy())
    path = found[step]
    try:
        trainer.checkpoint.restore(path).assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError) as e:
        raise UserError(f"cannot restore checkpoint {path}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:300]}. Was {config} edited after training?") from e
    restored = TrainedGenerator(trainer, model_dir, int(trainer.step.numpy()), path, image_folder)
    logging.info("Loaded %s at step %d (%s).", model_dir, restored.step,
                 "EMA generator" if restored.is_ema else "generator")
    return restored


def batch_norm_layers(model):
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


def standing_statistics(trained, num_batches, batch_size=None, seed=0):
    """Replaces the sampling generator's BN moving statistics with their average over
    `num_batches` batches of the prior (and uniform labels) run in training mode.

    Why: the EMA generator's weights are an average, but its BN statistics are a copy of the raw
    G's, which belong to other weights. BigGAN-PyTorch recomputes them the same way ("standing
    statistics": utils.py, accumulate_standing_stats). Each layer's mean and variance are the
    plain average of its per-batch statistics (momentum 0 per batch, averaged here); every
    other variable (e.g. spectral-norm vectors, which training mode would update) is restored.
    `batch_size` defaults to the run's training batch size.
    """
    generator = trained.generator
    layers = batch_norm_layers(generator)
    if not layers:
        raise UserError("this run's generator has no batch norm (architecture.g_norm = 'none'): "
                        "there are no statistics to recompute; drop --standing_stats")
    batch_size = int(batch_size or trained.trainer.opts.batch_size)
    saved = [w.numpy() for w in generator.weights]
    momenta = [layer.momentum for layer in layers]
    means = [np.zeros(layer.moving_mean.shape, np.float64) for layer in layers]
    variances = [np.zeros(layer.moving_variance.shape, np.float64) for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0  # the moving statistics become this batch's statistics
        for i in range(num_batches):
            z = architectures.sample_latents(trained.arch, [batch_size, trained.arch.z_dim], [seed, i])
            labels = tf.random.stateless_uniform([batch_size], [seed, i], maxval=trained.num_classes,
                                                 dtype=tf.int32)
            generator(z, labels, training=True)
            for j, layer in enumerate(layers):
                means[j] += layer.moving_mean.numpy()
                variances[j] += layer.moving_variance.numpy()
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for w, value in zip(generator.weights, saved):
            w.assign(value)
    for layer, mean, variance in zip(layers, means, variances):
        layer.moving_mean.assign((mean / num_batches).astype(np.float32))
        layer.moving_variance.assign((variance / num_batches).astype(np.float32))
    trained.standing_statistics = {"batches": int(num_batches), "batch_size": batch_size, "seed": int(seed),
                                   "layers": len(layers)}
    logging.info("Standing statistics: BN moving statistics of %d layers recomputed from %d batches of %d.",
                 len(layers), num_batches, batch_size)
    return trained
