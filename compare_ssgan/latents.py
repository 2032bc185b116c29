"""Latents for sampling a trained generator: truncated priors and interpolation paths.

Truncation (Brock et al. 2019, BigGAN, Sec. 3.1, "truncation trick"): z is drawn from the
run's prior conditioned on |z_i| <= T for every coordinate, i.e. values outside [-T, T] are
redrawn. For the normal prior this is BigGAN's rule; for the uniform prior U(-1, 1) the same
rule gives exactly U(-T, T) (drawn directly by scaling), so it is a truncation for T < 1 and
no change for T >= 1. Clipping instead would pile mass on +-T, which the generator never saw.

Interpolation is linear, z(t) = (1 - t) z0 + t z1 with t evenly spaced in [0, 1], for both
priors. For U(-1, 1) the support is a cube, which is convex, so every point on the segment
is a latent the generator was trained on; spherical interpolation (White 2016, "Sampling
Generative Networks", arXiv:1609.04468, Sec. 2.1), meant for normal priors in high dimension,
would leave the cube. For the normal prior, linear paths are the common choice (BigGAN-PyTorch,
utils.py `interp`), although their midpoints have a smaller norm than typical samples.
"""
import tensorflow as tf

from compare_ssgan import architectures
from compare_ssgan.errors import UserError

_MAX_REDRAWS = 100


def sample(config, num, seed, truncation=None):
    """[num, z_dim] latents from the run's prior (`config`: its ArchitectureConfig), stateless in
    the integer `seed`, optionally truncated at `truncation`."""
    shape, seed = [num, config.z_dim], [int(seed), 0]
    z = architectures.sample_latents(config, shape, seed)
    if truncation is None:
        return z
    if not truncation > 0:
        raise UserError(f"--truncation={truncation} must be > 0 (e.g. 0.5; smaller trades variety for fidelity)")
    if config.z_prior == "uniform":
        return z * min(float(truncation), 1.0)
    for redraw in range(1, _MAX_REDRAWS + 1):
        outside = tf.abs(z) > truncation
        if not bool(tf.reduce_any(outside)):
            return z
        z = tf.where(outside, architectures.sample_latents(config, shape, [int(seed[0]), redraw]), z)
    raise UserError(f"--truncation={truncation} is too small: values of N(0, 1) inside [-T, T] are too rare "
                    f"to draw; use T >= 0.05")


def interpolate(z0, z1, steps):
    """[len(z0), steps, z_dim]: `steps` evenly spaced points from z0 to z1 (both included)."""
    if steps < 2:
        raise UserError(f"--interpolate={steps} must be >= 2 (the number of images per path, ends included)")
    t = tf.reshape(tf.linspace(0.0, 1.0, steps), [1, steps, 1])
    return (1.0 - t) * z0[:, None, :] + t * z1[:, None, :]
