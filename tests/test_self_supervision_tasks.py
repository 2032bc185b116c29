"""LT-GAN (latent transformation detection) and CR-GAN (consistency regularisation) as
self-supervision tasks on the real GANModel, built from gin (smoke preset: SNDCGAN at width
1/16, z_dim 16, batch 8).

- LT: its loss weighs 0 before the warm-up ends and g_weight after; D's extra fake term on
  G(z + eps) trains D (Algorithm 1's structure: tests/test_latent_transformation.py).
- CR: ||D(x) - D(T(x))||^2 is 0 when T is the identity for D, positive otherwise, and trains
  D only.
- ltgan / crgan / cr_ltgan train end to end (crgan through the CLI, the LT models in process).
"""
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorboard.backend.event_processing import event_accumulator  # noqa: E402

from compare_ssgan import runner  # noqa: E402
from compare_ssgan import main as cli  # noqa: E402
from compare_ssgan.errors import UserError  # noqa: E402
from compare_ssgan.gans import consistency, latent_transformation  # noqa: E402
from run_helpers import IMAGE_FOLDER, build_smoke_gan, run_cli, smoke_args  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL = tf.constant(np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32))
LABELS = tf.zeros([8], tf.int32)


@pytest.fixture(autouse=True)
def _clean_gin():
    yield
    gin.clear_config()


def build(model="ltgan", params=()):
    return build_smoke_gan(f"gin/cifar10/{model}.gin", params)


def values(variables):
    return [np.array(v.numpy()) for v in variables]


def same(a, b, atol=0.0):
    return len(a) == len(b) and all(np.allclose(x, y, rtol=0, atol=atol) for x, y in zip(a, b))


def floats(metrics):
    return {k: float(v) for k, v in metrics.items()}


def d_step(gan, i=0):
    return floats(gan.d_step(REAL, LABELS, tf.constant([1, i], tf.int64)))


def g_step(gan, i=0):
    return floats(gan.g_step(LABELS, tf.constant([2, i], tf.int64)))


def lt_task(gan):
    return next(t for t in gan.tasks if isinstance(t, latent_transformation.LatentTransformationTask))


# -- LT-GAN ---------------------------------------------------------------------------------

def test_lt_loss_weighs_zero_before_warmup_and_g_weight_after():
    gan = build(params=["LatentTransformationTask.warmup_steps = 1", "LatentTransformationTask.g_weight = 2.0"])
    aux = lt_task(gan).aux
    # step 0: plain GAN (the LT terms are computed but weighted 0)
    gan.step.assign(0)
    d0 = d_step(gan, 0)
    assert d0["lt_active"] == 0.0 and d0["lt_d_fake_gap"] != 0.0
    np.testing.assert_allclose(d0["d_loss"], d0["d_adversarial_loss"], rtol=1e-6)
    aux0 = values(aux.trainable_weights)
    g0 = g_step(gan, 0)
    assert g0["lt_active"] == 0.0 and g0["lt_loss"] > 0.0
    np.testing.assert_allclose(g0["g_loss"], g0["g_adversarial_loss"], rtol=1e-6)
    assert same(values(aux.trainable_weights), aux0)  # zero gradient: Adam leaves it alone
    # step 1: warm-up over
    gan.step.assign(1)
    d1 = d_step(gan, 1)
    assert d1["lt_active"] == 1.0
    np.testing.assert_allclose(d1["d_loss"], d1["d_adversarial_loss"] + d1["lt_d_fake_gap"], rtol=1e-5)
    g1 = g_step(gan, 1)
    assert g1["lt_active"] == 1.0
    np.testing.assert_allclose(g1["g_loss"], g1["g_adversarial_loss"] + 2.0 * g1["lt_loss"], rtol=1e-5)
    assert not same(values(aux.trainable_weights), aux0)


def test_lt_d_fake_term_on_perturbed_images_trains_d():
    """d_weight 1 vs 0 (same start): D's update differs; and the term is the fake part of the
    loss on D(G(z + eps)) (for a separable loss, L(r, f_eps) - L(r, f))."""
    params = ["LatentTransformationTask.warmup_steps = 0", "loss.fn = @wasserstein"]
    on, off = build(params=params), build(params=params + ["LatentTransformationTask.d_weight = 0.0"])
    assert same(values(on.d_variables), values(off.d_variables))
    m_on, m_off = d_step(on), d_step(off)
    assert not same(values(on.d_variables), values(off.d_variables), atol=1e-7)
    np.testing.assert_allclose(m_on["lt_d_fake_gap"], m_off["lt_d_fake_gap"], rtol=1e-5)
    np.testing.assert_allclose(m_on["lt_d_adversarial_eps"] - m_on["d_adversarial_loss"],
                               m_on["lt_d_fake_gap"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(m_off["d_loss"], m_off["d_adversarial_loss"], rtol=1e-6)


def test_lt_needs_block_outputs():
    class NoBlocks:
        pass

    with pytest.raises(UserError, match="block_outputs"):
        latent_transformation.block_features(NoBlocks(), tf.zeros([1, 8, 8, 3]), -2)


# -- CR-GAN ---------------------------------------------------------------------------------

def test_augment_flips_and_translates_each_image():
    images = tf.reshape(tf.range(4 * 8 * 8 * 1, dtype=tf.float32), [4, 8, 8, 1])
    identity = consistency.augment(images, tf.constant([0, 1], tf.int64), translation=0, flip=False)
    np.testing.assert_array_equal(identity.numpy(), images.numpy())
    out = consistency.augment(images, tf.constant([0, 1], tf.int64), translation=2, flip=True,
                              padding="constant").numpy()
    assert out.shape == (4, 8, 8, 1)
    for x, y in zip(images.numpy(), out):
        padded = [np.pad(v, [[2, 2], [2, 2], [0, 0]]) for v in (x, x[:, ::-1])]
        assert any(np.array_equal(y, p[r:r + 8, c:c + 8]) for p in padded for r in range(5) for c in range(5))
    reflect = consistency.augment(images + 1.0, tf.constant([3, 4], tf.int64), translation=2, padding="reflect")
    assert float(tf.reduce_min(reflect)) >= 1.0  # reflection adds no zero borders


def test_consistency_is_zero_for_an_invariant_d_and_positive_otherwise():
    def mean_d(images, labels=None, training=False):  # flip-invariant
        return tf.reduce_mean(images, axis=[1, 2, 3]), None

    def left_half_d(images, labels=None, training=False):  # not flip-invariant
        return tf.reduce_mean(images[:, :, :16], axis=[1, 2, 3]), None

    seed = tf.constant([7, 8], tf.int64)
    flip_only = consistency.ConsistencyTask(translation=0, flip=True)
    shift = consistency.ConsistencyTask(translation=4, flip=False, padding="constant")
    for task, d, expect_zero in ((flip_only, mean_d, True), (flip_only, left_half_d, False),
                                 (shift, mean_d, False)):
        logits, _ = d(REAL)
        value = float(task.consistency(d, REAL, logits, LABELS, seed))
        if expect_zero:
            assert value == pytest.approx(0.0, abs=1e-12)
        else:
            assert value > 1e-6
    # the formula, against numpy, for a known D and a known T (flip of every image)
    flipped = REAL.numpy()[:, :, ::-1]
    expected = np.mean((REAL.numpy()[:, :, :16].mean((1, 2, 3)) - flipped[:, :, :16].mean((1, 2, 3))) ** 2)
    logits, _ = left_half_d(REAL)
    always_flip = consistency.ConsistencyTask(translation=0, flip=True)
    always_flip.transform = lambda images, seed: tf.reverse(images, [2])
    np.testing.assert_allclose(always_flip.consistency(left_half_d, REAL, logits, LABELS, seed), expected,
                               rtol=1e-5)


def test_consistency_trains_d_only():
    on, off = build("crgan"), build("crgan", ["ConsistencyTask.weight = 0.0"])
    assert same(values(on.d_variables), values(off.d_variables))
    m_on, m_off = d_step(on), d_step(off)
    assert m_on["consistency_loss"] > 0.0
    np.testing.assert_allclose(m_on["d_loss"], m_on["d_adversarial_loss"] + 10.0 * m_on["consistency_loss"],
                               rtol=1e-5)
    assert not same(values(on.d_variables), values(off.d_variables), atol=1e-7)
    # the G step is the plain GAN's: same G loss from the same (D, G) going in
    off.discriminator.set_weights(on.discriminator.get_weights())
    g_on, g_off = g_step(on), g_step(off)
    assert "consistency_loss" not in g_on
    np.testing.assert_allclose(g_on["g_loss"], g_on["g_adversarial_loss"], rtol=1e-6)
    np.testing.assert_allclose(g_on["g_loss"], g_off["g_loss"], rtol=1e-5)


def test_cr_and_lt_on_a_conditional_model():
    """Cond-GAN + CR + LT (the paper's conditional setting): labels flow, losses finite."""
    gan = build("cr_ltgan", ["model.conditional = True", "architecture.projection = True",
                             "architecture.g_norm = 'conditional_batch_norm'",
                             "LatentTransformationTask.warmup_steps = 0"])
    labels = tf.constant(np.arange(8) % 10, tf.int32)
    d = floats(gan.d_step(REAL, labels, tf.constant([1, 0], tf.int64)))
    g = floats(gan.g_step(labels, tf.constant([2, 0], tf.int64)))
    for m in (d, g):
        assert all(math.isfinite(v) for v in m.values())
    assert d["consistency_loss"] > 0.0 and g["lt_loss"] > 0.0


# -- end to end -----------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["ltgan", "cr_ltgan"])
def test_lt_models_train_in_process(tmp_path, model):
    gin.clear_config()
    cli.parse_gin([os.path.join(REPO, f"gin/cifar10/{model}.gin"), os.path.join(REPO, "gin/presets/smoke.gin")],
                  [IMAGE_FOLDER, "LatentTransformationTask.warmup_steps = 2"])
    model_dir = str(tmp_path / "run")
    assert runner.run(model_dir, "train", tf.distribute.get_strategy()) == 4  # NaN losses would raise
    gin.clear_config()
    events = event_accumulator.EventAccumulator(os.path.join(model_dir, "train"))
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {"lt_loss", "lt_active", "lt_d_fake_gap"} <= tags
    assert ("consistency_loss" in tags) == (model == "cr_ltgan")
    active = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("lt_active")]
    assert active == [0.0, 1.0]  # logged at steps 2 and 4 (the G steps 1 and 3, 0-based)
    for tag in ("d_loss", "g_loss", "lt_loss"):
        assert all(math.isfinite(float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag))
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")))
    aux_steps = [n for n in reader.get_variable_to_shape_map()
                 if n.startswith("latent_transformation_aux_adam") and "iteration" in n]
    assert aux_steps and int(reader.get_tensor(aux_steps[0])) == 2  # A's Adam: the G steps 2 and 3


def test_crgan_trains_through_the_cli(tmp_path):
    model_dir = str(tmp_path / "run")
    run_cli(smoke_args(model_dir, "cifar10/crgan.gin"))
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-4")
    events = event_accumulator.EventAccumulator(os.path.join(model_dir, "train"))
    events.Reload()
    values_ = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("consistency_loss")]
    assert len(values_) == 2 and all(math.isfinite(v) and v >= 0 for v in values_)
    config = open(os.path.join(model_dir, "operative_config.gin")).read()
    assert "ConsistencyTask.weight = 10.0" in config and "architecture.name = 'sndcgan'" in config
