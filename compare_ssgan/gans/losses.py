"""Adversarial losses, one signature: fn(d_real, d_fake) -> (d_loss, g_loss).

Each equals google/compare_gan's `gans/loss_lib.py` (cited per function), whose D returns
both logits and sigmoid outputs; ours returns logits, so a loss on outputs applies the sigmoid.

`d_real` and `d_fake` are D's logits [N] on real and generated images. Losses are means over
the examples given (per replica); the training loop scales them for cross-replica summing.
"""
import gin
import tensorflow as tf


@gin.configurable
def hinge(d_real, d_fake):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018), the SS-GAN paper's default
    (loss_lib.py:128-148)."""
    d_loss = tf.reduce_mean(tf.nn.relu(1.0 - d_real)) + tf.reduce_mean(tf.nn.relu(1.0 + d_fake))
    return d_loss, -tf.reduce_mean(d_fake)


@gin.configurable
def non_saturating(d_real, d_fake):
    """Goodfellow et al. 2014: D minimises BCE; G maximises log D(G(z)) instead of log(1-D)
    (loss_lib.py:50-79)."""
    d_loss = tf.reduce_mean(tf.nn.softplus(-d_real)) + tf.reduce_mean(tf.nn.softplus(d_fake))
    return d_loss, tf.reduce_mean(tf.nn.softplus(-d_fake))


@gin.configurable
def wasserstein(d_real, d_fake):
    """Arjovsky et al. 2017; needs a Lipschitz constraint (penalty or spectral norm)
    (loss_lib.py:82-102)."""
    return tf.reduce_mean(d_fake) - tf.reduce_mean(d_real), -tf.reduce_mean(d_fake)


@gin.configurable
def least_squares(d_real, d_fake):
    """Mao et al. 2017 as google/compare_gan has it (gans/loss_lib.py:105-125): squared errors
    of D's *sigmoid outputs* against targets 1 (real) and 0 (fake), halved."""
    p_real, p_fake = tf.sigmoid(d_real), tf.sigmoid(d_fake)
    d_loss = 0.5 * (tf.reduce_mean(tf.square(p_real - 1.0)) + tf.reduce_mean(tf.square(p_fake)))
    return d_loss, 0.5 * tf.reduce_mean(tf.square(p_fake - 1.0))


@gin.configurable
def loss(fn=hinge):
    """The adversarial loss of a run: `loss.fn = @hinge` (or @non_saturating, ...)."""
    return fn
