"""Generator/discriminator families behind one interface, chosen by name from a registry.

Interface (all tensors NHWC, images in [-1, 1]):
  generator(z [N, z_dim], labels [N] int32 or None, training) -> images [N, H, W, C]
      labels are read only by label-conditional norms (g_norm='conditional_batch_norm');
      every other G ignores them.
  discriminator(images [N, H, W, C], labels or None, training)
      -> (logits [N], features [N, F])   features: the pooled vector that feeds the logit,
                                         which self-supervision heads also read.
      With `projection`, logits += <embed(labels), features> (Miyato & Koyama 2018); with
      labels None that term is left out (features never depend on labels).
  discriminator.block_outputs(images, training) -> list of per-block activations
      [N, h, w, c] (for linear probes); discriminator.feature_dim = F.
A family registers a builder `fn(config: ArchitectureConfig, image_shape, num_classes)`
returning (generator, discriminator) via `@register("name")`.
"""
import dataclasses

import gin
import numpy as np
import tensorflow as tf

from compare_ssgan.errors import UserError

_BUILDERS = {}


def register(name):
    def wrap(fn):
        if name in _BUILDERS:
            raise ValueError(f"architecture {name!r} registered twice")
        _BUILDERS[name] = fn
        return fn

    return wrap


def names():
    return sorted(_BUILDERS)


@dataclasses.dataclass(frozen=True)
class ArchitectureConfig:
    name: str
    z_dim: int
    d_spectral_norm: bool
    g_norm: str
    width: float
    g_spectral_norm: bool = False
    projection: bool = False
    z_prior: str = "normal"
    d_width: float = None

    def channels(self, base):
        """G's channel count for a reference count `base` (and D's when d_width is unset)."""
        return max(1, int(round(base * self.width)))

    def d_channels(self, base):
        """D's channel count: `d_width` if set, else `width`."""
        return max(1, int(round(base * (self.width if self.d_width is None else self.d_width))))

    @property
    def uses_labels(self):
        return self.g_norm == "conditional_batch_norm" or self.projection


Z_PRIORS = ("normal", "uniform")


def sample_latents(config, shape, seed):
    """z from the run's prior, stateless in `seed` ([2] ints): 'normal' N(0, 1), or 'uniform'
    U(-1, 1) as google/compare_gan draws it for training and evaluation
    (compare_gan/gans/modular_gan.py:366-384, `z_generator`)."""
    if config.z_prior == "uniform":
        return tf.random.stateless_uniform(shape, seed=seed, minval=-1.0, maxval=1.0)
    return tf.random.stateless_normal(shape, seed=seed)


@gin.configurable
def architecture(name="resnet_cifar", z_dim=128, d_spectral_norm=True, g_norm="batch_norm", width=1.0,
                 g_spectral_norm=False, projection=False, z_prior="normal", d_width=None):
    """The networks of a run.

    `g_norm`: G's normaliser, one of ops.GeneratorNorm.KINDS ('batch_norm', 'none',
    'conditional_batch_norm' (needs labels: model.conditional = True),
    'self_modulated_batch_norm'); `projection`: add the projection discriminator's class term
    (needs labels); `g_spectral_norm`: spectral norm on G's layers (BigGAN); `width` scales
    every channel count (1.0 = the paper's networks; tests use small widths); `d_width`, if set,
    scales D's channels instead (a wider D costs far less than a wider G); `z_prior`: the
    latent distribution for training, sampling and evaluation, 'normal' or 'uniform'
    (U(-1, 1), compare_gan's; see `sample_latents`)."""
    if name not in _BUILDERS:
        raise UserError(
            f"unknown architecture {name!r}; valid names: {', '.join(names())} "
            f"(set architecture.name in gin)"
        )
    from compare_ssgan.architectures import ops

    if g_norm not in ops.GeneratorNorm.KINDS:
        raise UserError(
            f"unknown generator norm {g_norm!r}; valid: {', '.join(ops.GeneratorNorm.KINDS)} "
            f"(set architecture.g_norm in gin)"
        )
    for key, value in (("projection", projection), ("g_spectral_norm", g_spectral_norm),
                       ("d_spectral_norm", d_spectral_norm)):
        if not isinstance(value, bool):
            raise UserError(f"architecture.{key} must be True or False (got {value!r})")
    for key, value in (("width", width), ("d_width", 1.0 if d_width is None else d_width)):
        if not isinstance(value, (int, float)) or not value > 0:
            raise UserError(f"architecture.{key} must be a number > 0 (got {value!r})")
    if z_prior not in Z_PRIORS:
        raise UserError(f"unknown latent prior {z_prior!r}; valid: {', '.join(Z_PRIORS)} "
                        f"(set architecture.z_prior in gin)")
    return ArchitectureConfig(name, int(z_dim), bool(d_spectral_norm), g_norm, float(width),
                              bool(g_spectral_norm), bool(projection), z_prior,
                              None if d_width is None else float(d_width))


def build(config, image_shape, num_classes):
    """Builds and initialises (G, D) so their variables exist before a checkpoint restore."""
    generator, discriminator = _BUILDERS[config.name](config, tuple(image_shape), num_classes)
    z = np.zeros((2, config.z_dim), "float32")
    labels = np.zeros((2,), "int32")
    images = generator(z, labels, training=False)
    discriminator(images, labels, training=False)
    return generator, discriminator


def generator_norm(config, num_classes, **kwargs):
    """A `GeneratorNorm` as the config asks (used by every family's G)."""
    from compare_ssgan.architectures import ops

    if (config.g_norm == "conditional_batch_norm" and kwargs.get("condition", "labels") == "labels"
            and (not num_classes or num_classes < 2)):
        raise UserError(f"architecture.g_norm = 'conditional_batch_norm' needs a labelled dataset "
                        f"(this one has {num_classes} classes)")
    return ops.GeneratorNorm(config.g_norm, num_classes=num_classes,
                             spectral_norm=config.g_spectral_norm, **kwargs)


def projection(config, num_classes, dim, initializer="glorot_normal"):
    """D's projection term, or None when the config has no projection."""
    from compare_ssgan.architectures import ops

    if not config.projection:
        return None
    if not num_classes or num_classes < 2:
        raise UserError(f"architecture.projection = True needs a labelled dataset (this one has "
                        f"{num_classes} classes)")
    return ops.Projection(num_classes, dim, config.d_spectral_norm, initializer, name="projection")


def parameter_count(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


# Each family registers itself on import.
from compare_ssgan.architectures import (  # noqa: E402,F401
    biggan, resnet5, resnet128, resnet_cifar, sndcgan, sngan_resnet_cifar)
