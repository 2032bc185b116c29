"""Discriminator penalties, one signature: fn(discriminator, real, fake, seed) -> scalar.

`real` and `fake` are the unrotated images only; `seed` is a stateless-RNG seed [2] so the
step stays a pure function of its inputs (TPU-friendly, reproducible on resume). The
returned value is unweighted; `penalty.weight` (lambda) scales it.
"""
import gin
import tensorflow as tf


def _gradient_norm_penalty(discriminator, points):
    """mean((||grad_x D(x)|| - 1)^2), with an epsilon so the norm's gradient is finite at 0."""
    with tf.GradientTape() as tape:
        tape.watch(points)
        logits, _ = discriminator(points, training=False)
    grads = tape.gradient(logits, points)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-10)
    return tf.reduce_mean(tf.square(norms - 1.0))


def _per_example_uniform(images, seed):
    return tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], seed=seed)


@gin.configurable
def no_penalty(discriminator, real, fake, seed):
    del discriminator, real, fake, seed
    return tf.constant(0.0)


@gin.configurable
def wgan_gp(discriminator, real, fake, seed):
    """Gulrajani et al. 2017: gradient norm 1 on uniform interpolates of real and fake."""
    alpha = _per_example_uniform(real, seed)
    return _gradient_norm_penalty(discriminator, real + alpha * (fake - real))


@gin.configurable
def dragan(discriminator, real, fake, seed):
    """Kodali et al. 2017: gradient norm 1 around real data, x + alpha * 0.5 * std(x) * U."""
    del fake
    seed_alpha, seed_noise = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    _, variance = tf.nn.moments(real, axes=[0, 1, 2, 3])
    noise = 0.5 * tf.sqrt(variance) * tf.random.stateless_uniform(tf.shape(real), seed=seed_noise)
    return _gradient_norm_penalty(discriminator, real + _per_example_uniform(real, seed_alpha) * noise)


@gin.configurable
def l2(discriminator, real, fake, seed):
    """Weight decay on D's kernels: sum of w^2 / 2 (tf.nn.l2_loss), as compare_gan."""
    del real, fake, seed
    return tf.add_n([tf.nn.l2_loss(w) for w in discriminator.trainable_weights
                     if "kernel" in w.path])


@gin.configurable
def penalty(fn=no_penalty, weight=1.0):
    """The penalty of a run and its weight lambda: `penalty.fn = @wgan_gp`, `penalty.weight`."""
    return fn, float(weight)
