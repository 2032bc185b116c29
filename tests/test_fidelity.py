"""Fidelity to the reference code (docs/fidelity.md): compare_gan's resnet_cifar computes the
same function as an independent re-implementation of compare_gan's forward pass in its own
[0, 1] image range, up to the map x -> 2x - 1; structural facts of each reference (shortcuts,
upsampling, pooling, initialisers); the latent prior; the losses' and penalties' reference
conventions; Adam's epsilon; spectral norm's u update."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from compare_ssgan import architectures  # noqa: E402
from compare_ssgan.architectures import blocks  # noqa: E402
from compare_ssgan.errors import UserError  # noqa: E402
from compare_ssgan.gans import losses, penalties  # noqa: E402


def config(name, width=1 / 16, d_sn=True, z_prior="normal"):
    return architectures.ArchitectureConfig(name, 16, d_sn, "batch_norm", width, z_prior=z_prior)


def _np_unpool(x):
    """compare_gan resnet_ops.py:35-56, written out: x[i, j] goes to (2i, 2j), zeros elsewhere."""
    n, h, w, c = x.shape
    out = np.zeros((n, 2 * h, 2 * w, c), x.dtype)
    out[:, ::2, ::2, :] = x
    return out


def test_unpool_is_compare_gans_zero_insertion():
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype("float32")
    np.testing.assert_array_equal(blocks.unpool(tf.constant(x)).numpy(), _np_unpool(x))


def _conv(x, layer):
    return tf.nn.conv2d(x, layer.kernel, 1, "SAME") + layer.bias


def _bn_inference(x, norm):
    bn = norm.bn
    return (x - bn.moving_mean) / tf.sqrt(bn.moving_variance + bn.epsilon) * bn.gamma + bn.beta


def _reference_generator(g, z):
    """compare_gan resnet_cifar.Generator.apply (resnet_cifar.py:90-112), inference mode, [0, 1]."""
    h = tf.reshape(tf.matmul(z, g.linear.kernel) + g.linear.bias, (-1, 4, 4, g.start[2]))
    for block in g.blocks:  # resnet_ops.ResNetBlock.apply, scale "up" (resnet_ops.py:136-182)
        shortcut = _conv(_np_unpool(h.numpy()), block.shortcut)
        out = tf.nn.relu(_bn_inference(h, block.norm1))
        out = _conv(_np_unpool(out.numpy()), block.conv1)
        out = _conv(tf.nn.relu(_bn_inference(out, block.norm2)), block.conv2)
        h = out + shortcut
    h = _conv(tf.nn.relu(_bn_inference(h, g.final_norm)), g.to_rgb)
    return tf.sigmoid(h)


def _reference_discriminator(d, x01):
    """compare_gan resnet_cifar.Discriminator.apply (resnet_cifar.py:144-165) on [0, 1] images,
    without spectral norm; D blocks: conv shortcut, ReLU-conv-ReLU-conv, pool after the conv."""
    pool = lambda t: tf.nn.avg_pool2d(t, 2, 2, "SAME")  # noqa: E731
    h = x01
    for block in d.blocks:
        shortcut = _conv(h, block.shortcut_conv)
        out = _conv(tf.nn.relu(_conv(tf.nn.relu(h), block.conv1)), block.conv2)
        if block.downsample:
            shortcut, out = pool(shortcut), pool(out)
        h = out + shortcut
    features = tf.reduce_mean(tf.nn.relu(h), axis=[1, 2])
    return tf.squeeze(tf.matmul(features, d.linear.kernel) + d.linear.bias, -1)


def test_resnet_cifar_is_compare_gans_function_up_to_the_affine_image_map():
    g, d = architectures.build(config("resnet_cifar", width=1 / 8, d_sn=False), (32, 32, 3), 10)
    for norm in [b.norm1 for b in g.blocks] + [b.norm2 for b in g.blocks] + [g.final_norm]:
        norm.bn.moving_mean.assign(tf.random.stateless_normal(norm.bn.moving_mean.shape, [3, 1]) * 0.1)
        norm.bn.moving_variance.assign(1.0 + tf.random.stateless_uniform(norm.bn.moving_variance.shape, [3, 2]))
        norm.bn.gamma.assign(1.0 + 0.1 * tf.random.stateless_normal(norm.bn.gamma.shape, [3, 3]))
    z = tf.random.stateless_uniform([3, 16], [0, 7], minval=-1.0, maxval=1.0)
    reference_images01 = _reference_generator(g, z)
    ours = g(z, None, training=False)
    np.testing.assert_allclose(ours.numpy(), 2.0 * reference_images01.numpy() - 1.0, atol=2e-5)
    x01 = tf.random.stateless_uniform([3, 32, 32, 3], [0, 8])
    logits, _ = d(2.0 * x01 - 1.0, None, training=False)
    np.testing.assert_allclose(logits.numpy(), _reference_discriminator(d, x01).numpy(), rtol=1e-4, atol=1e-5)


def test_reference_structure_shortcuts_and_upsampling():
    g, d = architectures.build(config("resnet_cifar"), (32, 32, 3), 10)
    assert all(b.upsample is blocks.unpool and b.shortcut.kernel.shape[:2] == (3, 3) for b in g.blocks)
    assert all(b.shortcut_conv.kernel.shape[:2] == (3, 3) and not b.optimized for b in d.blocks)
    assert [b.downsample for b in d.blocks] == [True, True, False, False]
    g, d = architectures.build(config("sngan_resnet_cifar"), (32, 32, 3), 10)
    assert all(b.upsample is blocks.upsample_nearest and b.shortcut.kernel.shape[:2] == (1, 1) for b in g.blocks)
    assert [b.optimized for b in d.blocks] == [True, False, False, False]
    assert [b.shortcut_conv is None for b in d.blocks] == [False, False, True, True]
    assert d.linear.bias is None  # snresnet_32.py:17, nobias=True


@pytest.mark.parametrize("name", ["resnet_cifar", "sndcgan", "resnet5"])
def test_compare_gan_families_start_from_normal_002(name):
    shape = (128, 128, 3) if name == "resnet5" else (32, 32, 3)
    g, d = architectures.build(config(name, width=1 / 4), shape, 10)
    kernels = [w.numpy().ravel() for w in g.trainable_weights + d.trainable_weights if "kernel" in w.path]
    values = np.concatenate(kernels)
    assert 0.0185 < values.std() < 0.0215 and abs(values.mean()) < 1e-3
    # every layer draws its own values (a shared Keras initializer instance repeats them)
    firsts = [k[:16].tobytes() for k in kernels]
    assert len(set(firsts)) == len(firsts)


def test_initialisation_follows_the_global_seed():
    """Two builds after the same keras seed are identical, as the distributed tests need."""
    import keras

    builds = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        g, d = architectures.build(config("resnet_cifar"), (32, 32, 3), 10)
        builds.append([w.numpy() for w in g.weights + d.weights])
    for a, b in zip(*builds):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("prior", ["normal", "uniform"])
def test_latent_prior(prior):
    z = architectures.sample_latents(config("resnet_cifar", z_prior=prior), [4000, 16], [1, 2]).numpy()
    if prior == "uniform":  # compare_gan modular_gan.py:366-384: U(-1, 1)
        assert z.min() >= -1.0 and z.max() <= 1.0 and abs(z.var() - 1 / 3) < 0.01
    else:
        assert z.min() < -3.0 and abs(z.var() - 1.0) < 0.03
    gin.clear_config()
    with pytest.raises(UserError, match="z_prior"):
        architectures.architecture(z_prior="laplace")


def test_paper_rows_use_compare_gans_prior():
    gin.clear_config()
    gin.parse_config_files_and_bindings(["gin/cifar10/ssgan.gin"], [], skip_unknown=True)
    assert architectures.architecture().z_prior == "uniform"
    gin.clear_config()


def test_least_squares_acts_on_sigmoid_outputs():
    """compare_gan loss_lib.py:105-125 reads D's sigmoid outputs, not its logits."""
    d_real, d_fake = tf.constant([0.0, 2.0]), tf.constant([-1.0, 1.0])
    d_loss, g_loss = losses.least_squares(d_real, d_fake)
    p_real, p_fake = 1 / (1 + np.exp(-d_real.numpy())), 1 / (1 + np.exp(-d_fake.numpy()))
    np.testing.assert_allclose(d_loss, 0.5 * (np.mean((p_real - 1) ** 2) + np.mean(p_fake ** 2)), rtol=1e-6)
    np.testing.assert_allclose(g_loss, 0.5 * np.mean((p_fake - 1) ** 2), rtol=1e-6)


class _Linear:
    """D(x) = <w, x>: its input gradient is w everywhere."""

    def __init__(self, w):
        self.w = w

    def __call__(self, x, labels=None, training=False):
        return tf.reduce_sum(x * self.w, axis=[1, 2, 3]), None


def test_gradient_penalty_is_measured_in_compare_gans_zero_one_pixels():
    """D reads [-1, 1] images; compare_gan's D read [0, 1] ones, where the gradient is twice as
    large. zero_one: sqrt(1e-4 + |2w|^2); minus_one_one: sqrt(1e-4 + |w|^2)."""
    w = tf.fill([1, 2, 2, 1], 0.375)  # |w| = 0.75
    real, fake = tf.zeros([3, 2, 2, 1]), tf.ones([3, 2, 2, 1])
    gin.clear_config()
    for pixel_range, norm in (("zero_one", 1.5), ("minus_one_one", 0.75)):
        fn, _ = penalties.penalty(fn=penalties.wgan_gp, pixel_range=pixel_range)
        expected = (np.sqrt(1e-4 + norm ** 2) - 1.0) ** 2
        np.testing.assert_allclose(fn(_Linear(w), real, fake, tf.constant([1, 2])), expected, rtol=1e-5)
    with pytest.raises(UserError, match="pixel_range"):
        penalties.penalty(pixel_range="0-255")


def test_dragan_perturbs_as_compare_gan():
    """x + std(x) (U - 0.5), clipped: with constant real images std is 0, so the penalty is
    taken at x itself."""
    fn, _ = penalties.penalty(fn=penalties.dragan)
    w = tf.fill([1, 2, 2, 1], 0.375)
    value = fn(_Linear(w), tf.fill([2, 2, 2, 1], 0.3), None, tf.constant([0, 1]))
    np.testing.assert_allclose(value, (np.sqrt(1e-4 + 1.5 ** 2) - 1.0) ** 2, rtol=1e-5)
