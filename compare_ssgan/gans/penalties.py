"""Discriminator penalties, one signature: fn(discriminator, real, fake, seed, pixel_scale) -> scalar.

`real` and `fake` are the unrotated images only (in [-1, 1]); `seed` is a stateless-RNG seed
[2] so the step stays a pure function of its inputs (TPU-friendly, reproducible on resume).
The returned value is unweighted; `penalty.weight` (lambda) scales it.

Gradient penalties measure ||grad_x D(x)|| with x in the pixel range the reference used.
google/compare_gan feeds D images in [0, 1] (`penalty.pixel_range = 'zero_one'`, the
default, for the SS-GAN rows); there the gradient is twice the one with respect to this
project's [-1, 1] images, so `pixel_scale` = 2. Gulrajani et al.'s and SNGAN-family code feed
[-1, 1] images (`'minus_one_one'`, `pixel_scale` = 1).
"""
import functools

import gin
import tensorflow as tf

from compare_ssgan.errors import UserError

PIXEL_SCALES = {"zero_one": 2.0, "minus_one_one": 1.0}


def _gradient_norm_penalty(discriminator, points, pixel_scale):
    """mean((||grad D(x)|| - 1)^2) as compare_gan's `wgangp_penalty` (penalty_lib.py:73-82):
    the norm is sqrt(1e-4 + sum g^2), g the gradient in the reference's pixel range. D runs in
    training mode, as compare_gan's penalty call does (its spectral norm advances u)."""
    with tf.GradientTape() as tape:
        tape.watch(points)
        logits, _ = discriminator(points, training=True)
    grads = pixel_scale * tape.gradient(logits, points)
    norms = tf.sqrt(1e-4 + tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
    return tf.reduce_mean(tf.square(norms - 1.0))


@gin.configurable
def no_penalty(discriminator, real, fake, seed, pixel_scale=2.0):
    del discriminator, real, fake, seed, pixel_scale
    return tf.constant(0.0)


@gin.configurable
def wgan_gp(discriminator, real, fake, seed, pixel_scale=2.0):
    """Gulrajani et al. 2017: gradient norm 1 on uniform interpolates of real and fake
    (compare_gan penalty_lib.py:59-82)."""
    alpha = tf.random.stateless_uniform([tf.shape(real)[0], 1, 1, 1], seed=seed)
    return _gradient_norm_penalty(discriminator, real + alpha * (fake - real), pixel_scale)


@gin.configurable
def dragan(discriminator, real, fake, seed, pixel_scale=2.0):
    """Kodali et al. 2017 as compare_gan has it (penalty_lib.py:33-56): gradient norm 1 at
    x + std(x) * (U[0, 1) - 0.5), std over the whole batch, clipped to the image range. (The
    DRAGAN paper's own code perturbs differently; this is compare_gan's.)"""
    del fake
    _, variance = tf.nn.moments(real, axes=[0, 1, 2, 3])
    noise = tf.random.stateless_uniform(tf.shape(real), seed=seed) - 0.5
    noisy = tf.clip_by_value(real + tf.sqrt(variance) * noise, -1.0, 1.0)
    return _gradient_norm_penalty(discriminator, noisy, pixel_scale)


@gin.configurable
def l2(discriminator, real, fake, seed, pixel_scale=2.0):
    """Weight decay as compare_gan's `l2_penalty` (penalty_lib.py:85-102): the *mean* over
    D's kernels of sum(w^2) / 2. Kernels are every trainable D weight except biases, the
    task heads' and the projection table (compare_gan's D scope holds them all; its
    projection is a linear layer's kernel)."""
    del real, fake, seed, pixel_scale
    kernels = [w for w in discriminator.trainable_weights if "kernel" in w.path or "embeddings" in w.path]
    return tf.reduce_mean(tf.stack([tf.nn.l2_loss(w) for w in kernels]))


@gin.configurable
def penalty(fn=no_penalty, weight=1.0, pixel_range="zero_one"):
    """The penalty of a run, its weight lambda and the pixel range its gradient norms are
    measured in: `penalty.fn = @wgan_gp`, `penalty.weight`, `penalty.pixel_range`."""
    if pixel_range not in PIXEL_SCALES:
        raise UserError(f"unknown penalty.pixel_range {pixel_range!r}; valid: {', '.join(PIXEL_SCALES)}")
    bound = functools.partial(fn, pixel_scale=PIXEL_SCALES[pixel_range])
    bound.__name__ = getattr(fn, "__name__", str(fn))
    return bound, float(weight)
