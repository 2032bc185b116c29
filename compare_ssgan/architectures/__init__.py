"""Generator/discriminator families behind one interface, chosen by name from a registry.

Interface (all tensors NHWC, images in [-1, 1]):
  generator(z [N, z_dim], labels [N] int32 or None, training) -> images [N, H, W, C]
  discriminator(images [N, H, W, C], labels or None, training)
      -> (logits [N], features [N, F])   features: the pooled vector that feeds the logit,
                                         which self-supervision heads also read.
A family registers a builder `fn(config: ArchitectureConfig, image_shape, num_classes)`
returning (generator, discriminator) via `@register("name")`.
"""
import dataclasses

import gin
import numpy as np

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

    def channels(self, base):
        return max(1, int(round(base * self.width)))


@gin.configurable
def architecture(name="resnet_cifar", z_dim=128, d_spectral_norm=True, g_norm="batch_norm", width=1.0):
    """The networks of a run. `g_norm`: 'batch_norm' or 'none'; `width` scales every
    channel count (1.0 = the paper's networks; tests use small widths)."""
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
    return ArchitectureConfig(name, int(z_dim), bool(d_spectral_norm), g_norm, float(width))


def build(config, image_shape, num_classes):
    """Builds and initialises (G, D) so their variables exist before a checkpoint restore."""
    generator, discriminator = _BUILDERS[config.name](config, tuple(image_shape), num_classes)
    z = np.zeros((2, config.z_dim), "float32")
    labels = np.zeros((2,), "int32")
    images = generator(z, labels, training=False)
    discriminator(images, labels, training=False)
    return generator, discriminator


def parameter_count(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


# Each family registers itself on import.
from compare_ssgan.architectures import resnet_cifar, sndcgan  # noqa: E402,F401
