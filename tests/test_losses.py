"""Adversarial losses of compare_ssgan.gans.losses against hand-written numpy formulas.

Every loss is `fn(d_real, d_fake) -> (d_loss, g_loss)`. The expected values below are
computed from the published formulas in float64 numpy (never by calling the library), and
the gradients are checked against their closed forms.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from compare_ssgan.gans import losses  # noqa: E402

D_REAL = np.array([1.5, -0.5, 0.2])
D_FAKE = np.array([-2.0, 0.3, 1.0])


def _softplus(x):
    return np.logaddexp(0.0, x)  # log(1 + e^x), stable


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# name -> (d_loss(r, f), g_loss(f), dD/dr(r, f), dD/df(r, f), dG/df(f)); N = len(r) = len(f).
REFERENCE = {
    "hinge": (
        lambda r, f: np.mean(np.maximum(0.0, 1.0 - r)) + np.mean(np.maximum(0.0, 1.0 + f)),
        lambda f: -np.mean(f),
        lambda r, f: -(r < 1.0).astype(float) / len(r),
        lambda r, f: (f > -1.0).astype(float) / len(f),
        lambda f: -np.ones_like(f) / len(f),
    ),
    "non_saturating": (
        # D: BCE with targets 1 (real) / 0 (fake) on sigmoid(logit); G: -log sigmoid(D(G(z))).
        lambda r, f: np.mean(-np.log(_sigmoid(r))) + np.mean(-np.log(1.0 - _sigmoid(f))),
        lambda f: np.mean(-np.log(_sigmoid(f))),
        lambda r, f: -(1.0 - _sigmoid(r)) / len(r),
        lambda r, f: _sigmoid(f) / len(f),
        lambda f: -(1.0 - _sigmoid(f)) / len(f),
    ),
    "wasserstein": (
        lambda r, f: np.mean(f) - np.mean(r),
        lambda f: -np.mean(f),
        lambda r, f: -np.ones_like(r) / len(r),
        lambda r, f: np.ones_like(f) / len(f),
        lambda f: -np.ones_like(f) / len(f),
    ),
    "least_squares": (
        # compare_gan loss_lib.py:105-125: on sigmoid outputs p = s(x); ds/dx = s (1 - s).
        lambda r, f: 0.5 * (np.mean((_sigmoid(r) - 1.0) ** 2) + np.mean(_sigmoid(f) ** 2)),
        lambda f: 0.5 * np.mean((_sigmoid(f) - 1.0) ** 2),
        lambda r, f: (_sigmoid(r) - 1.0) * _sigmoid(r) * (1 - _sigmoid(r)) / len(r),
        lambda r, f: _sigmoid(f) * _sigmoid(f) * (1 - _sigmoid(f)) / len(f),
        lambda f: (_sigmoid(f) - 1.0) * _sigmoid(f) * (1 - _sigmoid(f)) / len(f),
    ),
}

LOSS_NAMES = sorted(REFERENCE)


def _call(name, d_real, d_fake):
    fn = getattr(losses, name)
    r = tf.constant(d_real, tf.float32)
    f = tf.constant(d_fake, tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([r, f])
        d_loss, g_loss = fn(r, f)
    grads = {
        "d_r": tape.gradient(d_loss, r, unconnected_gradients=tf.UnconnectedGradients.ZERO),
        "d_f": tape.gradient(d_loss, f, unconnected_gradients=tf.UnconnectedGradients.ZERO),
        "g_r": tape.gradient(g_loss, r, unconnected_gradients=tf.UnconnectedGradients.ZERO),
        "g_f": tape.gradient(g_loss, f, unconnected_gradients=tf.UnconnectedGradients.ZERO),
    }
    del tape
    return d_loss, g_loss, {k: v.numpy() for k, v in grads.items()}


def test_hand_computed_hinge_numbers():
    """The hinge reference itself, worked out on paper for D_REAL / D_FAKE:
    relu(1 - r) = [0, 1.5, 0.8] -> 2.3/3; relu(1 + f) = [0, 1.3, 2.0] -> 3.3/3; G = 0.7/3."""
    d_loss, g_loss, _ = _call("hinge", D_REAL, D_FAKE)
    np.testing.assert_allclose(float(d_loss), 5.6 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(float(g_loss), 0.7 / 3.0, rtol=1e-6)


@pytest.mark.parametrize("name", LOSS_NAMES)
class TestLoss:
    def test_values(self, name):
        d_ref, g_ref = REFERENCE[name][:2]
        d_loss, g_loss, _ = _call(name, D_REAL, D_FAKE)
        assert d_loss.shape == () and g_loss.shape == ()
        np.testing.assert_allclose(float(d_loss), d_ref(D_REAL, D_FAKE), rtol=1e-6)
        np.testing.assert_allclose(float(g_loss), g_ref(D_FAKE), rtol=1e-6)

    def test_values_random_batch(self, name):
        rng = np.random.default_rng(3)
        r, f = rng.normal(0.0, 2.0, 17), rng.normal(0.0, 2.0, 17)
        d_ref, g_ref = REFERENCE[name][:2]
        d_loss, g_loss, _ = _call(name, r, f)
        np.testing.assert_allclose(float(d_loss), d_ref(r, f), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(float(g_loss), g_ref(f), rtol=1e-5, atol=1e-6)

    def test_gradients(self, name):
        _, _, ddr, ddf, dgf = REFERENCE[name]
        _, _, grads = _call(name, D_REAL, D_FAKE)
        np.testing.assert_allclose(grads["d_r"], ddr(D_REAL, D_FAKE), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(grads["d_f"], ddf(D_REAL, D_FAKE), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(grads["g_f"], dgf(D_FAKE), rtol=1e-5, atol=1e-7)

    def test_generator_loss_depends_only_on_d_fake(self, name):
        """G's loss has no gradient wrt D(x) and does not change when D(x) changes (the
        training loop relies on this when it passes d_fake in both slots)."""
        _, g_loss, grads = _call(name, D_REAL, D_FAKE)
        np.testing.assert_array_equal(grads["g_r"], np.zeros_like(D_REAL))
        _, g_loss_other, _ = _call(name, -3.0 * D_REAL + 7.0, D_FAKE)
        assert float(g_loss) == float(g_loss_other)
        # ... but it does depend on d_fake (otherwise the check above is vacuous).
        _, g_loss_shifted, _ = _call(name, D_REAL, D_FAKE + 0.5)
        assert not np.isclose(float(g_loss), float(g_loss_shifted), rtol=1e-4)


@pytest.mark.parametrize("name", ["non_saturating", "least_squares", "hinge", "wasserstein"])
def test_large_logits_are_finite_and_exact(name):
    """Saturated logits (|x| = 100) must not overflow (softplus, not log(sigmoid))."""
    r = np.array([100.0, -100.0, 30.0])
    f = np.array([-100.0, 100.0, -30.0])
    d_ref, g_ref = REFERENCE[name][:2]
    d_loss, g_loss, grads = _call(name, r, f)
    assert np.isfinite(float(d_loss)) and np.isfinite(float(g_loss))
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    if name == "non_saturating":  # the naive reference overflows: write the softplus form
        d_expected = np.mean(_softplus(-r)) + np.mean(_softplus(f))
        g_expected = np.mean(_softplus(-f))
    else:
        d_expected, g_expected = d_ref(r, f), g_ref(f)
    np.testing.assert_allclose(float(d_loss), d_expected, rtol=1e-6)
    np.testing.assert_allclose(float(g_loss), g_expected, rtol=1e-6)


def test_loss_configurable_defaults_to_hinge_and_follows_gin():
    gin.clear_config()
    try:
        assert losses.loss() is losses.hinge
        gin.parse_config("loss.fn = @wasserstein")
        assert losses.loss() is losses.wasserstein
        gin.clear_config()
        gin.parse_config("loss.fn = @least_squares")
        assert losses.loss() is losses.least_squares
    finally:
        gin.clear_config()
