"""Cond-GAN (projection D + conditional BN) and SS-GAN (sBN): the normalisers start as plain
batch norm, labels reach the layers that read them, gradients reach the embeddings, fake labels
come from the step's seed, a few real steps give finite losses, and the CLI runs cond.gin."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from compare_ssgan import architectures  # noqa: E402
from compare_ssgan import main as cli  # noqa: E402
from compare_ssgan.architectures import ops  # noqa: E402
from compare_ssgan.errors import UserError  # noqa: E402
from compare_ssgan.gans.model import GANModel  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL = tf.constant(np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32))
LABELS = tf.constant(np.arange(8) % 10, tf.int32)
X = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, (8, 4, 4, 6)).astype(np.float32))
Z = tf.constant(np.random.default_rng(2).normal(size=(8, 16)).astype(np.float32))


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def plain_bn(x):
    bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False, scale=False)
    return bn(x, training=True).numpy()


def test_sbn_at_initialisation_is_batch_norm_without_affine():
    norm = ops.GeneratorNorm("self_modulated_batch_norm")
    out = norm(X, Z, None, training=True).numpy()
    np.testing.assert_array_equal(norm.gamma.kernel.numpy(), 0.0)
    np.testing.assert_array_equal(norm.gamma.bias.numpy(), 1.0)
    np.testing.assert_array_equal(norm.beta.kernel.numpy(), 0.0)
    np.testing.assert_array_equal(norm.beta.bias.numpy(), 0.0)
    assert norm.hidden.units == 32
    np.testing.assert_allclose(out, plain_bn(X), rtol=1e-5, atol=1e-5)
    assert np.abs(out).max() > 0.5  # not trivially zero


def test_sbn_modulates_with_z_once_kernels_move():
    norm = ops.GeneratorNorm("self_modulated_batch_norm")
    norm(X, Z, None, training=True)
    norm.gamma.kernel.assign(tf.random.stateless_normal(norm.gamma.kernel.shape, seed=[0, 0]))
    a = norm(X, Z, None, training=True).numpy()
    b = norm(X, Z * 2.0, None, training=True).numpy()
    assert not np.allclose(a, b, atol=1e-3)


def test_sbn_spectral_norm_variant_builds_and_is_finite():
    norm = ops.GeneratorNorm("self_modulated_batch_norm", spectral_norm=True)
    out = norm(X, Z, None, training=True).numpy()
    assert np.all(np.isfinite(out)) and any("sn_u" in w.path for w in norm.weights)


def test_conditional_bn_at_initialisation_is_batch_norm_for_every_class():
    norm = ops.GeneratorNorm("conditional_batch_norm", num_classes=10)
    reference = plain_bn(X)
    for labels in (tf.zeros(8, tf.int32), tf.range(8), tf.fill([8], 9)):
        np.testing.assert_allclose(norm(X, Z, labels, training=True).numpy(), reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(norm.gamma.kernel.numpy(), np.ones((10, 6)))  # gamma starts at 1
    np.testing.assert_array_equal(norm.beta.kernel.numpy(), np.zeros((10, 6)))


def test_conditional_bn_reads_labels_when_gammas_differ():
    norm = ops.GeneratorNorm("conditional_batch_norm", num_classes=10)
    norm(X, None, tf.zeros(8, tf.int32), training=True)
    norm.gamma.kernel.assign(norm.gamma.kernel * tf.range(1.0, 11.0)[:, None])
    norm.beta.kernel.assign(tf.fill([10, 6], 0.5) * tf.range(10.0)[:, None])
    labels = tf.constant([0, 1, 2, 3, 4, 5, 6, 7])
    out = norm(X, None, labels, training=True).numpy()
    expected = plain_bn(X) * (1.0 + np.arange(8))[:, None, None, None] + 0.5 * np.arange(8)[:, None, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="needs labels"):
        norm(X, None, None, training=True)


def test_projection_logit_depends_on_labels():
    cfg = architectures.ArchitectureConfig("resnet_cifar", 16, True, "batch_norm", 1 / 16, False, True)
    _, d = architectures.build(cfg, (32, 32, 3), 10)
    logits_a, feats_a = d(REAL, tf.zeros(8, tf.int32))
    logits_b, feats_b = d(REAL, tf.fill([8], 3))
    np.testing.assert_allclose(feats_a, feats_b)  # features never depend on labels
    assert np.abs(logits_a - logits_b).min() > 1e-6
    # logit = linear(features) + <embed(y), features>, embedding spectrally normalised
    emb = ops.spectral_normalize(d.projection.embedding.kernel, d.projection.embedding.sn_u, False)
    unconditional, _ = d(REAL, None)
    np.testing.assert_allclose(logits_b, unconditional + tf.reduce_sum(emb[3] * feats_b, -1),
                               rtol=1e-4, atol=1e-4)


def build_gan(gin_file, params=(), image_shape=(32, 32, 3), num_classes=10, batch=8):
    gin.clear_config()
    try:
        cli.parse_gin([os.path.join(REPO, gin_file), os.path.join(REPO, "gin/presets/smoke.gin")], list(params))
        keras.utils.set_random_seed(0)
        return GANModel(architectures.architecture(), image_shape, num_classes, global_batch=batch,
                        num_replicas=1, g_lr=1e-3, d_lr=1e-3, beta1=0.0, beta2=0.9)
    finally:
        gin.clear_config()


class _Recording:
    def __init__(self, optimizer):
        self.optimizer, self.grads = optimizer, None

    def apply(self, grads, variables):
        self.grads = {v.path: (None if g is None else tf.convert_to_tensor(g).numpy())
                      for g, v in zip(grads, variables)}
        return self.optimizer.apply(grads, variables)


def test_cond_gan_labels_reach_g_and_d_and_embeddings_get_gradients():
    gan = build_gan("gin/cifar10/cond.gin")
    assert gan.conditional and gan.arch.g_norm == "conditional_batch_norm" and gan.arch.projection
    z = tf.random.stateless_normal([8, 16], seed=[5, 5])
    g = gan.generator
    # compare_gan's cBN class tables start N(0, 0.02) (arch_ops.py:423-445): each class has its
    # own gamma and beta from the start
    tables = [w.numpy() for w in g.weights if "gamma/embeddings" in w.path or "beta/embeddings" in w.path]
    assert tables and all(0.01 < t.std() < 0.03 and not np.allclose(t[0], t[7]) for t in tables)
    gan.d_optimizer, gan.g_optimizer = _Recording(gan.d_optimizer), _Recording(gan.g_optimizer)
    for step in range(2):
        d = {k: float(v) for k, v in gan.d_step(REAL, LABELS, tf.constant([step, 1], tf.int64)).items()}
        m = {k: float(v) for k, v in gan.g_step(LABELS, tf.constant([step, 2], tf.int64)).items()}
        assert all(np.isfinite(list(d.values()) + list(m.values())))
        g_grads, d_grads = gan.g_optimizer.grads, gan.d_optimizer.grads
        cbn = [p for p in g_grads if "gamma" in p or "beta" in p]
        assert cbn and all(g_grads[p] is not None and np.abs(g_grads[p]).max() > 0 for p in cbn)
        proj = [p for p in d_grads if "projection" in p]
        assert proj and all(np.abs(d_grads[p]).max() > 0 for p in proj)
    # after training, the per-class gammas/betas differ, so the label changes G's output
    a = g(z, tf.zeros(8, tf.int32), training=False).numpy()
    b = g(z, tf.fill([8], 7), training=False).numpy()
    assert np.abs(a - b).max() > 1e-4


def test_fake_labels_are_uniform_seeded_and_sliced_from_a_global_draw():
    gan = build_gan("gin/cifar10/cond.gin")
    seed = tf.constant([3, 4], tf.int64)
    a, b = gan.sample_fake_labels(seed).numpy(), gan.sample_fake_labels(seed).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (8,) and a.dtype == np.int32 and a.min() >= 0 and a.max() < 10
    many = np.concatenate([gan.sample_fake_labels(tf.constant([i, 0], tf.int64)).numpy() for i in range(100)])
    assert set(many) == set(range(10))
    assert np.abs(np.bincount(many, minlength=10) / len(many) - 0.1).max() < 0.05
    assert not np.array_equal(a, gan.sample_fake_labels(tf.constant([3, 5], tf.int64)).numpy())
    # replica r of 2 takes rows [4r, 4r + 4) of the same global draw (as with the latents)
    gan.per_replica_batch = 4

    class _Replica:
        num_replicas_in_sync = 2

        def __init__(self, i):
            self.replica_id_in_sync_group = i

    original = tf.distribute.get_replica_context
    try:
        halves = []
        for i in range(2):
            tf.distribute.get_replica_context = lambda i=i: _Replica(i)
            halves.append(gan.sample_fake_labels(seed).numpy())
    finally:
        tf.distribute.get_replica_context = original
    np.testing.assert_array_equal(np.concatenate(halves), a)
    uncond = build_gan("gin/cifar10/ssgan.gin")
    assert uncond.sample_fake_labels(seed) is None


def test_conditional_with_wgan_gp_penalty_sees_labels():
    gan = build_gan("gin/cifar10/cond.gin", ["penalty.fn = @wgan_gp", "penalty.weight = 1.0"])
    m = gan.d_step(REAL, LABELS, tf.constant([0, 1], tf.int64))
    assert np.isfinite(float(m["penalty"])) and float(m["penalty"]) > 0


MODELS = [("gin/cifar10/cond.gin", "resnet_cifar"), ("gin/cifar10/cond.gin", "sndcgan"),
          ("gin/cifar10/ssgan_sbn.gin", "resnet_cifar"), ("gin/cifar10/ssgan_sbn.gin", "sndcgan"),
          ("gin/cifar10/cond.gin", "resnet128"), ("gin/cifar10/ssgan_sbn.gin", "resnet128"),
          ("gin/cifar10/cond.gin", "biggan"), ("gin/cifar10/ssgan_sbn.gin", "biggan")]


@pytest.mark.parametrize("gin_file,arch", MODELS)
def test_two_training_steps_are_finite(gin_file, arch):
    params = [f"architecture.name = '{arch}'"]
    if arch == "biggan":
        params.append("architecture.g_spectral_norm = True")
    gan = build_gan(gin_file, params)
    before = [v.numpy().copy() for v in gan.g_variables]
    for step in range(2):
        d = gan.d_step(REAL, LABELS, tf.constant([step, 1], tf.int64))
        g = gan.g_step(LABELS, tf.constant([step, 2], tf.int64))
        for k, v in {**d, **g}.items():
            assert np.isfinite(float(v)), (k, float(v))
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(before, gan.g_variables))
    if "sbn" in gin_file:
        assert "rotation_loss_real" in d and gan.arch.g_norm == "self_modulated_batch_norm"


def test_biggan_128_one_step_is_finite():
    gan = build_gan("gin/cifar10/cond.gin", ["architecture.name = 'biggan'", "architecture.g_spectral_norm = True",
                                             "architecture.width = 0.03125"],
                    image_shape=(128, 128, 3), batch=4)
    real = tf.image.resize(REAL[:4], [128, 128])
    d = gan.d_step(real, LABELS[:4], tf.constant([0, 1], tf.int64))
    g = gan.g_step(LABELS[:4], tf.constant([0, 2], tf.int64))
    assert all(np.isfinite(float(v)) for v in {**d, **g}.values())


def test_label_switch_errors():
    with pytest.raises(UserError, match="model.conditional = True"):
        build_gan("gin/cifar10/uncond.gin", ["architecture.projection = True"])
    with pytest.raises(UserError, match="ignores labels"):
        build_gan("gin/cifar10/uncond.gin", ["model.conditional = True"])
    with pytest.raises(UserError, match="labelled dataset"):
        build_gan("gin/cifar10/cond.gin", num_classes=1)
    with pytest.raises(UserError, match="valid: batch_norm, none, conditional_batch_norm, self_modulated_batch_norm"):
        build_gan("gin/cifar10/uncond.gin", ["architecture.g_norm = 'cbn'"])


def test_cli_trains_cond_gin(tmp_path):
    from run_helpers import run_cli, smoke_args

    model_dir = str(tmp_path / "cond")
    result = run_cli(smoke_args(model_dir, "cifar10/cond.gin"))
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-4")
    config = open(os.path.join(model_dir, "operative_config.gin")).read()
    assert "model.conditional = True" in config and "architecture.projection = True" in config
    assert "d_loss=" in result.stderr
