"""Discriminator penalties of compare_ssgan.gans.penalties, on discriminators whose input
gradient is known in closed form.

A penalty is `fn(discriminator, real, fake, seed, pixel_scale) -> scalar`, with
`discriminator(images, training) -> (logits [N], features)`. These tests use pixel_scale 1
(gradients in the [-1, 1] range the images are in); tests/test_fidelity.py covers the [0, 1]
scale compare_gan measured in.
- Linear D, logits = sum(w * x): grad_x = w for every x, so every gradient-norm penalty is
  (sqrt(||w||^2 + 1e-4) - 1)^2 wherever it is evaluated (compare_gan's 1e-4).
- Quadratic D, logits = 0.5 * sum(x^2): grad_x = x, so the penalty reveals where it was taken.
"""
import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from compare_ssgan import architectures  # noqa: E402
from compare_ssgan.gans import penalties  # noqa: E402

SHAPE = (5, 4, 3, 2)  # N, H, W, C
SEED = tf.constant([7, 11], tf.int64)
EPS = 1e-4  # compare_gan penalty_lib.py:53,79


def _pen(name):
    return functools.partial(getattr(penalties, name), pixel_scale=1.0)


class LinearD:
    def __init__(self, w):
        self.w = tf.Variable(np.asarray(w, np.float32))

    def __call__(self, images, labels=None, training=False):
        logits = tf.reduce_sum(images * self.w, axis=[1, 2, 3])
        return logits, tf.reshape(images, [tf.shape(images)[0], -1])


class QuadraticD:
    def __call__(self, images, labels=None, training=False):
        logits = 0.5 * tf.reduce_sum(tf.square(images), axis=[1, 2, 3])
        return logits, tf.reshape(images, [tf.shape(images)[0], -1])


def _images(seed):
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.uniform(-1, 1, SHAPE).astype(np.float32)),
            tf.constant(rng.uniform(-1, 1, SHAPE).astype(np.float32)))


def _linear_expected(w):
    w = np.asarray(w, np.float64)
    return (np.sqrt(np.sum(w ** 2) + EPS) - 1.0) ** 2


GRADIENT_PENALTIES = ["wgan_gp", "dragan"]


@pytest.mark.parametrize("name", GRADIENT_PENALTIES)
@pytest.mark.parametrize("w_scale", [0.05, 0.3, 1.0])
def test_linear_discriminator_gradient_penalty(name, w_scale):
    rng = np.random.default_rng(1)
    w = w_scale * rng.normal(size=SHAPE[1:])
    real, fake = _images(2)
    value = _pen(name)(LinearD(w), real, fake, SEED)
    assert value.shape == ()
    np.testing.assert_allclose(float(value), _linear_expected(w), rtol=1e-5)
    # the value is independent of where it is evaluated: other images, other seed
    real2, fake2 = _images(3)
    value2 = _pen(name)(LinearD(w), real2, fake2, tf.constant([3, 4], tf.int64))
    np.testing.assert_allclose(float(value2), _linear_expected(w), rtol=1e-5)


@pytest.mark.parametrize("name", GRADIENT_PENALTIES)
def test_unit_norm_gradient_has_zero_penalty(name):
    """The epsilon sits inside the sqrt: ||w||^2 = 1 - 1e-4 gives a norm of exactly 1."""
    rng = np.random.default_rng(4)
    w = rng.normal(size=SHAPE[1:])
    w *= np.sqrt(1.0 - EPS) / np.linalg.norm(w)
    real, fake = _images(5)
    value = float(_pen(name)(LinearD(w), real, fake, SEED))
    np.testing.assert_allclose(value, 0.0, atol=1e-10)


@pytest.mark.parametrize("name", GRADIENT_PENALTIES)
def test_epsilon_inside_sqrt_at_zero_gradient(name):
    """With w = 0 the norm is sqrt(1e-4) = 1e-2 (not 0), and the penalty's gradient wrt D's
    weights is finite (d sqrt(s)/ds is infinite at s = 0 without the epsilon)."""
    d = LinearD(np.zeros(SHAPE[1:]))
    real, fake = _images(6)
    with tf.GradientTape() as tape:
        value = _pen(name)(d, real, fake, SEED)
    grad = tape.gradient(value, d.w)
    np.testing.assert_allclose(float(value), (1e-2 - 1.0) ** 2, rtol=1e-6)
    assert not np.isclose(float(value), 1.0, rtol=1e-6, atol=0)
    assert grad is not None and np.all(np.isfinite(grad.numpy()))
    np.testing.assert_allclose(grad.numpy(), 0.0, atol=1e-6)


def test_penalty_gradient_wrt_weights_matches_closed_form():
    """d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||: the penalty trains D (double backprop)."""
    rng = np.random.default_rng(8)
    w = 0.2 * rng.normal(size=SHAPE[1:])
    d = LinearD(w)
    real, fake = _images(9)
    with tf.GradientTape() as tape:
        value = _pen("wgan_gp")(d, real, fake, SEED)
    norm = np.sqrt(np.sum(w ** 2) + EPS)
    np.testing.assert_allclose(tape.gradient(value, d.w).numpy(), 2 * (norm - 1) * w / norm,
                               rtol=1e-4, atol=1e-7)


def _wgan_gp_quadratic_expected(real, fake, seed):
    alpha = tf.random.stateless_uniform([SHAPE[0], 1, 1, 1], seed=seed).numpy().astype(np.float64)
    assert np.all((alpha >= 0) & (alpha < 1))
    r, f = real.numpy().astype(np.float64), fake.numpy().astype(np.float64)
    x_hat = r + alpha * (f - r)  # grad of 0.5 * ||x||^2 is x
    norms = np.sqrt(np.sum(x_hat ** 2, axis=(1, 2, 3)) + EPS)
    return np.mean((norms - 1.0) ** 2)


def test_wgan_gp_quadratic_discriminator_uses_per_example_interpolates():
    real, fake = _images(10)
    value = float(_pen("wgan_gp")(QuadraticD(), real, fake, SEED))
    np.testing.assert_allclose(value, _wgan_gp_quadratic_expected(real, fake, SEED), rtol=1e-5)
    # Not at the real or fake points themselves (alpha is neither 0 nor 1):
    at_real = np.mean((np.linalg.norm(real.numpy().reshape(SHAPE[0], -1), axis=1) - 1) ** 2)
    at_fake = np.mean((np.linalg.norm(fake.numpy().reshape(SHAPE[0], -1), axis=1) - 1) ** 2)
    assert not np.isclose(value, at_real, rtol=1e-3)
    assert not np.isclose(value, at_fake, rtol=1e-3)


def test_wgan_gp_is_a_pure_function_of_the_seed():
    real, fake = _images(11)
    a = float(_pen("wgan_gp")(QuadraticD(), real, fake, SEED))
    b = float(_pen("wgan_gp")(QuadraticD(), real, fake, tf.constant([7, 11], tf.int64)))
    c = float(_pen("wgan_gp")(QuadraticD(), real, fake, tf.constant([7, 12], tf.int64)))
    assert a == b
    assert not np.isclose(a, c, rtol=1e-4)
    np.testing.assert_allclose(c, _wgan_gp_quadratic_expected(real, fake, tf.constant([7, 12], tf.int64)),
                               rtol=1e-5)


def test_dragan_quadratic_discriminator():
    real, fake = _images(12)
    a = float(_pen("dragan")(QuadraticD(), real, fake, SEED))
    # DRAGAN perturbs real data only: the fake batch is ignored.
    b = float(_pen("dragan")(QuadraticD(), real, fake * 0.0 + 5.0, SEED))
    assert a == b
    # a pure function of the seed
    assert a == float(_pen("dragan")(QuadraticD(), real, fake, tf.constant([7, 11], tf.int64)))
    assert not np.isclose(a, float(_pen("dragan")(QuadraticD(), real, fake,
                                                    tf.constant([8, 11], tf.int64))), rtol=1e-5)
    # The perturbation is scaled by the batch std: a constant batch (std 0) is not moved, so
    # the penalty is taken exactly at the real points.
    c = 0.3
    constant = tf.fill(SHAPE, c)
    expected = (np.sqrt(c ** 2 * np.prod(SHAPE[1:]) + EPS) - 1.0) ** 2
    np.testing.assert_allclose(float(_pen("dragan")(QuadraticD(), constant, fake, SEED)),
                               expected, rtol=1e-5)


def test_no_penalty_is_zero():
    real, fake = _images(13)
    value = penalties.no_penalty(QuadraticD(), real, fake, SEED)
    assert value.shape == ()
    assert float(value) == 0.0


def test_l2_is_half_sum_of_squared_kernels_only():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(4, bias_initializer="ones"),
        keras.layers.BatchNormalization(),  # gamma/beta and moving stats are not kernels
        keras.layers.Dense(2, bias_initializer="ones"),
    ])
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    # compare_gan penalty_lib.py:101: the mean over kernels of each kernel's l2_loss.
    expected = np.mean([0.5 * np.sum(layer.kernel.numpy().astype(np.float64) ** 2) for layer in dense])
    value = float(penalties.l2(model, None, None, None))
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    with_biases = expected + np.mean([0.5 * np.sum(layer.bias.numpy() ** 2) for layer in dense])
    assert not np.isclose(value, with_biases, rtol=1e-3)


def test_l2_on_the_project_discriminator_counts_conv_and_dense_kernels():
    config = architectures.ArchitectureConfig("resnet_cifar", 8, True, "batch_norm", 0.0625)
    keras.utils.set_random_seed(0)
    _, disc = architectures.build(config, (32, 32, 3), 10)
    kernels = [layer.kernel for layer in disc._flatten_layers()
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    assert len(kernels) == 13  # 4 blocks x 3 convs + the final linear
    expected = np.mean([0.5 * np.sum(k.numpy().astype(np.float64) ** 2) for k in kernels])
    np.testing.assert_allclose(float(penalties.l2(disc, None, None, None)), expected, rtol=1e-5)


def test_wgan_gp_trains_the_project_discriminator():
    """Double backprop through the real (spectrally normalised, ResNet) D works: the penalty's
    gradient wrt every D kernel exists and is finite, and some are non-zero."""
    config = architectures.ArchitectureConfig("resnet_cifar", 8, True, "batch_norm", 0.0625)
    keras.utils.set_random_seed(0)
    _, disc = architectures.build(config, (32, 32, 3), 10)
    rng = np.random.default_rng(14)
    real = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32))
    fake = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        value = penalties.wgan_gp(disc, real, fake, SEED, pixel_scale=2.0)
    grads = tape.gradient(value, disc.trainable_weights)
    kernel_grads = [g for g, w in zip(grads, disc.trainable_weights) if "kernel" in w.path]
    assert kernel_grads and all(g is not None for g in kernel_grads)
    assert all(np.all(np.isfinite(g.numpy())) for g in kernel_grads)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in kernel_grads) > 0.0


def test_penalty_configurable():
    gin.clear_config()
    try:
        fn, weight = penalties.penalty()
        assert fn.func is penalties.no_penalty and weight == 1.0
        assert fn.keywords == {"pixel_scale": 2.0}  # compare_gan's [0, 1] pixels by default
        gin.parse_config(["penalty.fn = @wgan_gp", "penalty.weight = 10",
                          "penalty.pixel_range = 'minus_one_one'"])
        fn, weight = penalties.penalty()
        assert fn.func is penalties.wgan_gp and fn.keywords == {"pixel_scale": 1.0}
        assert weight == 10.0 and isinstance(weight, float)
    finally:
        gin.clear_config()
