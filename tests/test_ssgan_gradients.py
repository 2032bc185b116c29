"""SS-GAN gradient facts (Chen et al., CVPR 2019) on the real GANModel, built from gin as the
training code builds it (smoke preset: width 1/16, z_dim 16, 4 rotated images, batch 8).

- The fake-image rotation loss (weight g_weight, alpha) trains G only: D's update does not
  depend on it, G's does.
- The real-image rotation loss (weight d_weight, beta) trains D (its body and the head).
- Rot-only (adversarial_weight 0): D learns from the rotation loss alone.
- The rotation head belongs to D: a G step never changes it.

Pairs of models are built with the same keras seed and the test asserts they start equal,
so a seeding failure shows as such and not as a spurious difference.
"""
import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from run_helpers import build_smoke_gan  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SSGAN = "gin/cifar10/ssgan.gin"
ROT_ONLY = "gin/cifar10/rot_only.gin"

REAL = tf.constant(np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32))
LABELS = tf.constant(np.arange(8) % 10, tf.int32)
D_SEED = tf.constant([1, 2], tf.int64)
G_SEED = tf.constant([3, 4], tf.int64)


@pytest.fixture(autouse=True)
def _clean_gin():
    yield
    gin.clear_config()


def build(gin_file=SSGAN, params=()):
    return build_smoke_gan(gin_file, params)


def values(variables):
    return [v.numpy().copy() for v in variables]


def all_d_weights(gan):
    """Every D variable, trainable or not (spectral-norm vectors too), head included."""
    return gan.discriminator.weights + [w for t in gan.tasks for layer in t.d_layers for w in layer.weights]


def assert_equal_lists(a, b, atol=0.0):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


def assert_lists_differ(a, b, rtol=1e-6):
    assert len(a) == len(b)
    assert any(not np.allclose(x, y, rtol=rtol, atol=0) for x, y in zip(a, b))


class _Recording:
    """Wraps an optimizer and keeps the gradients the step handed to it (None -> zeros)."""

    def __init__(self, optimizer):
        self.optimizer, self.grads = optimizer, None

    def apply(self, grads, variables):
        self.grads = [np.zeros(v.shape, np.float32) if g is None else g.numpy()
                      for g, v in zip(grads, variables)]
        return self.optimizer.apply(grads, variables)


def flat(arrays):
    return np.concatenate([a.ravel() for a in arrays])


@functools.lru_cache(maxsize=None)
def trained(gin_file=SSGAN, params=(), loss_override=None, scale_generator=None):
    """Builds a model and runs d_step then g_step (eagerly), snapshotting the variables and
    the gradients each step passed to its Adam optimizer."""
    gan = build(gin_file, params)
    if loss_override == "zero":  # a model whose only D objective is the rotation loss
        gan.loss_fn = lambda d_real, d_fake: (tf.constant(0.0), tf.constant(0.0))
    gan.d_optimizer, gan.g_optimizer = _Recording(gan.d_optimizer), _Recording(gan.g_optimizer)
    rec = {"gan": gan, "d0": values(gan.d_variables), "g0": values(gan.g_variables)}
    if scale_generator is not None:  # other fake images, same D
        kernel = gan.generator.to_rgb.kernel
        kernel.assign(kernel * scale_generator)
        rec["g0"] = values(gan.g_variables)
    rec["d_metrics"] = {k: float(v) for k, v in gan.d_step(REAL, LABELS, D_SEED).items()}
    rec["d_grads"] = flat(gan.d_optimizer.grads)
    rec["d1"], rec["g1"] = values(gan.d_variables), values(gan.g_variables)
    rec["d_all1"] = values(all_d_weights(gan))
    rec["g_metrics"] = {k: float(v) for k, v in gan.g_step(LABELS, G_SEED).items()}
    rec["g_grads"] = flat(gan.g_optimizer.grads)
    rec["d2"], rec["g2"] = values(gan.d_variables), values(gan.g_variables)
    rec["d_all2"] = values(all_d_weights(gan))
    return rec


def assert_grads_differ(a, b, rel=1e-2):
    """Gradients differ by more than `rel` of their size (Adam's first step is nearly
    lr * sign(grad), so weights alone are a weak witness of a changed gradient)."""
    assert np.linalg.norm(a - b) > rel * max(np.linalg.norm(a), np.linalg.norm(b))


def g_weight(w):
    return (f"RotationTask.g_weight = {w}",)


def d_weight(w):
    return (f"RotationTask.d_weight = {w}",)


def test_models_with_the_same_seed_start_identical():
    a, b = trained(params=g_weight(0.2)), trained(params=g_weight(50.0))
    assert_equal_lists(a["d0"], b["d0"])
    assert_equal_lists(a["g0"], b["g0"])
    assert a["gan"].tasks[0].g_weight == 0.2 and b["gan"].tasks[0].g_weight == 50.0


def test_d_update_does_not_depend_on_fake_rotation_loss():
    """(a) g_weight 0.2 vs 50: identical D after one d_step, and D did move."""
    a, b = trained(params=g_weight(0.2)), trained(params=g_weight(50.0))
    assert_equal_lists(a["d0"], b["d0"])
    assert_equal_lists(a["d1"], b["d1"], atol=1e-7)
    # Every D variable, head included, changed, except the logit's bias: the hinge loss's
    # gradient wrt it is mean(1[fake > -1]) - mean(1[real < 1]) = 0 while all logits lie
    # inside the margin, as they do at compare_gan's N(0, 0.02) initialisation.
    for variable, before, after in zip(a["gan"].d_variables, a["d0"], a["d1"]):
        if variable.path != "discriminator/logit/bias":
            assert not np.allclose(before, after, rtol=0, atol=1e-6), variable.path
    np.testing.assert_allclose(a["d_metrics"]["d_loss"], b["d_metrics"]["d_loss"], rtol=1e-7)
    np.testing.assert_allclose(a["d_grads"], b["d_grads"], rtol=0,  # the same gradient
                               atol=1e-6 * np.abs(a["d_grads"]).max())
    # a D step leaves G's trainable variables alone
    assert_equal_lists(a["g0"], a["g1"])


def test_g_update_depends_on_fake_rotation_loss():
    """(b) g_weight 0.2 vs 50: same D going in, different G after one g_step."""
    a, b = trained(params=g_weight(0.2)), trained(params=g_weight(50.0))
    assert_equal_lists(a["g1"], b["g1"])
    assert_lists_differ(a["g2"], b["g2"])
    assert_grads_differ(a["g_grads"], b["g_grads"])
    for name, rec, w in (("a", a, 0.2), ("b", b, 50.0)):
        m = rec["g_metrics"]
        np.testing.assert_allclose(
            m["g_loss"], m["g_adversarial_loss"] + w * m["rotation_loss_fake"], rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(a["g_metrics"]["rotation_loss_fake"],
                               b["g_metrics"]["rotation_loss_fake"], rtol=1e-6)


def test_g_weight_zero_changes_g_update():
    """(c) g_weight 0 vs 0.2 changes G's update (and not D's)."""
    a, b = trained(params=g_weight(0.2)), trained(params=g_weight(0.0))
    assert_equal_lists(a["g0"], b["g0"])
    assert_equal_lists(a["d1"], b["d1"], atol=1e-7)
    assert_lists_differ(a["g2"], b["g2"])
    assert_grads_differ(a["g_grads"], b["g_grads"])
    np.testing.assert_allclose(b["g_metrics"]["g_loss"], b["g_metrics"]["g_adversarial_loss"], rtol=1e-6)


def flat_head(gan):
    """Boolean mask of the rotation head's entries in flat(d_variables)."""
    head_ids = {id(w) for w in gan.tasks[0].head.trainable_weights}
    return np.concatenate([np.full(int(np.prod(v.shape)), id(v) in head_ids) for v in gan.d_variables])


def test_d_weight_changes_d_update():
    """(c) d_weight 0 vs 1: the real-image rotation loss trains D's body and its head."""
    one, zero = trained(params=g_weight(0.2)), trained(params=g_weight(0.2) + d_weight(0.0))
    assert_equal_lists(one["d0"], zero["d0"])
    gan = one["gan"]
    head_ids = {id(w) for w in gan.tasks[0].head.trainable_weights}
    is_head = [id(v) in head_ids for v in gan.d_variables]
    body_differs = [not np.allclose(x, y, rtol=1e-6, atol=0)
                    for x, y, h in zip(one["d1"], zero["d1"], is_head) if not h]
    assert any(body_differs)
    assert_grads_differ(one["d_grads"][~flat_head(gan)], zero["d_grads"][~flat_head(gan)])
    np.testing.assert_array_equal(zero["d_grads"][flat_head(gan)], 0.0)
    assert np.abs(one["d_grads"][flat_head(gan)]).max() > 1e-4
    # with d_weight 0 the head gets a zero gradient, so Adam leaves it where it was
    for x0, x1, h in zip(zero["d0"], zero["d1"], is_head):
        if h:
            np.testing.assert_allclose(x1, x0, rtol=0, atol=0)
    for x0, x1, h in zip(one["d0"], one["d1"], is_head):
        if h:
            assert not np.allclose(x1, x0, rtol=0, atol=1e-6)
    for rec, w in ((one, 1.0), (zero, 0.0)):
        m = rec["d_metrics"]
        np.testing.assert_allclose(
            m["d_loss"], m["d_adversarial_loss"] + m["penalty"] + w * m["rotation_loss_real"], rtol=1e-5)


@pytest.mark.filterwarnings("ignore:Gradients do not exist:UserWarning")  # the zero loss
def test_rot_only_d_update_ignores_adversarial_loss():
    """(d) Rot-only: same D update with hinge or Wasserstein, and the same as an SS-GAN whose
    adversarial loss is replaced by zero (D trained by the rotation loss alone)."""
    hinge = trained(ROT_ONLY)
    wass = trained(ROT_ONLY, ("loss.fn = @wasserstein",))
    only_rotation = trained(SSGAN, loss_override="zero")
    assert hinge["gan"].adversarial_weight == 0.0 and hinge["gan"].name == "rot_only"
    assert "rotation_loss_real" in hinge["d_metrics"]
    assert_equal_lists(hinge["d0"], wass["d0"])
    assert_equal_lists(hinge["d0"], only_rotation["d0"])
    assert hinge["gan"].loss_fn is not wass["gan"].loss_fn
    assert_equal_lists(hinge["d1"], wass["d1"], atol=1e-7)
    assert_equal_lists(hinge["d1"], only_rotation["d1"], atol=1e-7)
    scale = np.abs(hinge["d_grads"]).max()
    np.testing.assert_allclose(wass["d_grads"], hinge["d_grads"], rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(only_rotation["d_grads"], hinge["d_grads"], rtol=0, atol=1e-6 * scale)
    assert_lists_differ(hinge["d0"], hinge["d1"])
    # the adversarial losses do differ, they are just weighted 0
    assert not np.isclose(hinge["d_metrics"]["d_adversarial_loss"],
                          wass["d_metrics"]["d_adversarial_loss"], rtol=1e-3)
    np.testing.assert_allclose(hinge["d_metrics"]["d_loss"], hinge["d_metrics"]["rotation_loss_real"],
                               rtol=1e-6)
    # and it is not the update of the full SS-GAN
    assert_lists_differ(hinge["d1"], trained(params=g_weight(0.2))["d1"])


def test_rot_only_d_update_does_not_see_fake_images():
    """D's rotation head learns from real images only: in Rot-only, changing G (hence the fake
    batch) leaves D's update unchanged. (Wasserstein, whose value moves with every fake logit,
    so the witness below cannot be hidden by a saturated hinge.)"""
    base = trained(ROT_ONLY, ("loss.fn = @wasserstein",))
    other_g = trained(ROT_ONLY, ("loss.fn = @wasserstein",), scale_generator=3.0)
    assert_equal_lists(base["d0"], other_g["d0"])
    assert_lists_differ(base["g0"], other_g["g0"])
    assert_equal_lists(base["d1"], other_g["d1"], atol=1e-7)
    np.testing.assert_allclose(base["d_grads"], other_g["d_grads"], rtol=0,
                               atol=1e-6 * np.abs(base["d_grads"]).max())
    # ... although D did see different fakes (its unused adversarial loss changed)
    assert not np.isclose(base["d_metrics"]["d_adversarial_loss"],
                          other_g["d_metrics"]["d_adversarial_loss"], rtol=1e-3)
    np.testing.assert_allclose(base["d_metrics"]["rotation_loss_real"],
                               other_g["d_metrics"]["rotation_loss_real"], rtol=1e-6)


def test_g_step_leaves_d_and_rotation_head_alone():
    """(e) The head is a D variable: not in G's variable list, its trainable weights unchanged
    by g_step, while G itself moves."""
    rec = trained(params=g_weight(0.2))
    gan = rec["gan"]
    head = gan.tasks[0].head
    g_ids = {id(v) for v in gan.g_variables}
    d_ids = {id(v) for v in gan.d_variables}
    assert head.trainable_weights and all(id(w) in d_ids for w in head.trainable_weights)
    assert not any(id(w) in g_ids for w in head.weights)
    assert any("sn_u" in w.path for w in head.weights)  # SN head when D is spectrally normed
    assert_equal_lists(rec["d1"], rec["d2"])
    assert_lists_differ(rec["g1"], rec["g2"])


def test_g_step_advances_spectral_norm_vectors():
    """compare_gan advances u on every D forward pass (arch_ops.py:515-517), the G step's too."""
    rec = trained(params=g_weight(0.2))
    gan = rec["gan"]
    sn = [i for i, w in enumerate(all_d_weights(gan)) if "sn_u" in w.path]
    assert sn
    assert_lists_differ([rec["d_all1"][i] for i in sn], [rec["d_all2"][i] for i in sn])


def test_rot_only_zeroes_the_penalty():
    """compare_gan's Rot-only multiplies D's loss by 0 after adding the penalty
    (gans/ssgan.py:191-214): D's objective is the rotation loss alone."""
    rec = trained(ROT_ONLY, params=("penalty.fn = @wgan_gp", "penalty.weight = 10.0"))
    metrics = rec["d_metrics"]
    assert metrics["penalty"] > 1e-3  # computed, and large enough to matter if it were weighted
    np.testing.assert_allclose(metrics["d_loss"], metrics["rotation_loss_real"], rtol=1e-6)


def test_adam_epsilon_is_tf1s():
    gan = trained()["gan"]
    assert gan.d_optimizer.optimizer.epsilon == gan.g_optimizer.optimizer.epsilon == 1e-8


def test_g_gradient_is_adversarial_plus_g_weight_times_rotation_gradient():
    """G's gradient is linear in g_weight (alpha): grad(w) = grad(0) + w * grad(CE_fake).
    The three models see the same D (the D step ignores g_weight, checked above)."""
    g0, g02, g50 = (trained(params=g_weight(w))["g_grads"] for w in (0.0, 0.2, 50.0))
    rot = (g02 - g0) / 0.2
    assert np.linalg.norm(rot) > 1e-2 * np.linalg.norm(g0)  # the rotation term is not negligible
    np.testing.assert_allclose(g50 - g0, 50.0 * rot, rtol=0, atol=5e-4 * np.abs(50.0 * rot).max())  # float32 rounding of the 50x term
