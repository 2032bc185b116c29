"""Rotation self-supervision (SS-GAN): rotate_all and RotationTask's losses."""
import os
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from compare_ssgan.errors import UserError  # noqa: E402
from compare_ssgan.gans.rotation import RotationTask, rotate_all  # noqa: E402


def _random_images(r=3, size=5, channels=2, seed=0):
    return np.random.default_rng(seed).normal(size=(r, size, size, channels)).astype(np.float32)


def test_90_degrees_is_counter_clockwise_by_hand():
    """[[1, 2], [3, 4]] rotated 90 degrees counter-clockwise is [[2, 4], [1, 3]]."""
    image = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)[None, :, :, None]
    rotated, labels = rotate_all(tf.constant(image))
    hand = {0: [[1, 2], [3, 4]], 1: [[2, 4], [1, 3]], 2: [[4, 3], [2, 1]], 3: [[3, 1], [4, 2]]}
    for k, expected in hand.items():
        np.testing.assert_array_equal(rotated.numpy()[k, :, :, 0], np.array(expected, np.float32))
    np.testing.assert_array_equal(labels.numpy(), [0, 1, 2, 3])


def test_blocks_match_numpy_rot90():
    images = _random_images(r=3)
    rotated, labels = rotate_all(tf.constant(images))
    assert rotated.shape == (12,) + images.shape[1:]
    assert labels.dtype == tf.int32
    np.testing.assert_array_equal(labels.numpy(), np.repeat([0, 1, 2, 3], 3))
    for k in range(4):
        for i in range(3):
            np.testing.assert_array_equal(rotated.numpy()[3 * k + i],
                                          np.rot90(images[i], k, axes=(0, 1)))
    # the 0-degree block is the input itself, and the rotated blocks really differ from it
    np.testing.assert_array_equal(rotated.numpy()[:3], images)
    for k in range(1, 4):
        assert not np.allclose(rotated.numpy()[3 * k:3 * k + 3], images)


def test_rotating_four_times_is_identity():
    images = _random_images(r=2, seed=1)
    x = tf.constant(images)
    for _ in range(4):
        x = rotate_all(x)[0][2:4]  # the 90-degree block
    np.testing.assert_array_equal(x.numpy(), images)
    # 90 then 270 degrees also gives the input back
    ninety = rotate_all(tf.constant(images))[0][2:4]
    np.testing.assert_array_equal(rotate_all(ninety)[0][6:8].numpy(), images)
    np.testing.assert_array_equal(tf.image.rot90(ninety, 3).numpy(), images)


def test_rotate_all_with_unknown_batch_size_in_tf_function():
    fn = tf.function(rotate_all, input_signature=[tf.TensorSpec([None, 4, 4, 1], tf.float32)])
    images = _random_images(r=2, size=4, channels=1, seed=2)
    rotated, labels = fn(tf.constant(images))
    np.testing.assert_array_equal(labels.numpy(), [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(rotated.numpy()[6], np.rot90(images[0], 3, axes=(0, 1)))


# --- RotationTask on a hand-made discriminator ------------------------------------------


class CornerD:
    """features = the four corners of channel 0 (clockwise from top-left): a 90-degree
    counter-clockwise rotation cycles them, so a linear head can read the rotation."""

    feature_dim = 4

    def __call__(self, images, labels=None, training=False):
        x = images[..., 0]
        feats = tf.stack([x[:, 0, 0], x[:, 0, -1], x[:, -1, -1], x[:, -1, 0]], axis=1)
        return tf.zeros([tf.shape(images)[0]]), feats


def _corners(images):
    x = images[..., 0]
    return np.stack([x[:, 0, 0], x[:, 0, -1], x[:, -1, -1], x[:, -1, 0]], axis=1)


def _ce_and_accuracy(features, kernel, bias, labels):
    logits = features.astype(np.float64) @ kernel + bias
    logits -= logits.max(1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    ce = -np.mean(log_softmax[np.arange(len(labels)), labels])
    return ce, np.mean(np.argmax(logits, 1) == labels)


def _task(d_weight=1.0, g_weight=0.2, rotated_batch_size=4, num_replicas=2, spectral_norm=False):
    task = RotationTask(d_weight=d_weight, g_weight=g_weight, rotated_batch_size=rotated_batch_size)
    task.build(CornerD(), spectral_norm=spectral_norm, global_batch=8, num_replicas=num_replicas)
    rng = np.random.default_rng(5)
    task.head.kernel.assign(rng.normal(size=(4, 4)).astype(np.float32))
    task.head.bias.assign(rng.normal(size=(4,)).astype(np.float32))
    return task


def _ctx(real, fake, real_features=None, fake_features=None):
    return types.SimpleNamespace(
        discriminator=CornerD(), real=tf.constant(real), fake=tf.constant(fake),
        real_features=tf.constant(_corners(real) if real_features is None else real_features),
        fake_features=tf.constant(_corners(fake) if fake_features is None else fake_features))


def _expected(task, images, zero_degree_features):
    """CE/accuracy of the head on the four rotations of images[:per_replica], written with
    numpy: rotate, read the corners, apply the head."""
    n = task.per_replica
    subset = images[:n]
    feats = [zero_degree_features[:n]]
    feats += [_corners(np.stack([np.rot90(im, k, axes=(0, 1)) for im in subset])) for k in (1, 2, 3)]
    labels = np.repeat(np.arange(4), n)
    return _ce_and_accuracy(np.concatenate(feats), task.head.kernel.numpy().astype(np.float64),
                            task.head.bias.numpy().astype(np.float64), labels)


def test_d_loss_uses_real_images_and_g_loss_uses_fakes():
    task = _task(d_weight=1.5, g_weight=0.2)
    assert task.per_replica == 2  # rotated_batch_size 4 over 2 replicas
    real, fake = _random_images(r=4, size=6, seed=6), _random_images(r=4, size=6, seed=7)
    ctx = _ctx(real, fake)
    d_loss, d_metrics = task.d_loss(ctx)
    g_loss, g_metrics = task.g_loss(ctx)
    ce_real, acc_real = _expected(task, real, _corners(real))
    ce_fake, acc_fake = _expected(task, fake, _corners(fake))
    assert not np.isclose(ce_real, ce_fake, rtol=1e-3)  # so the inputs can be told apart
    np.testing.assert_allclose(float(d_metrics["rotation_loss_real"]), ce_real, rtol=1e-5)
    np.testing.assert_allclose(float(d_loss), 1.5 * ce_real, rtol=1e-5)
    np.testing.assert_allclose(float(d_metrics["rotation_accuracy_real"]), acc_real, rtol=1e-6)
    np.testing.assert_allclose(float(g_metrics["rotation_loss_fake"]), ce_fake, rtol=1e-5)
    np.testing.assert_allclose(float(g_loss), 0.2 * ce_fake, rtol=1e-5)
    np.testing.assert_allclose(float(g_metrics["rotation_accuracy_fake"]), acc_fake, rtol=1e-6)


def test_only_the_rotated_sub_batch_is_used_and_zero_degree_features_are_reused():
    task = _task()
    real, fake = _random_images(r=4, size=6, seed=8), _random_images(r=4, size=6, seed=9)
    # D's features of the unrotated batch are passed in, not recomputed: mark them
    marked = _corners(real) + 3.0
    d_loss, _ = task.d_loss(_ctx(real, fake, real_features=marked))
    np.testing.assert_allclose(float(d_loss), _expected(task, real, marked)[0], rtol=1e-5)
    assert not np.isclose(float(d_loss), _expected(task, real, _corners(real))[0], rtol=1e-3)
    # images beyond the per-replica rotated sub-batch do not matter
    changed = real.copy()
    changed[task.per_replica:] += 10.0
    d_loss_changed, _ = task.d_loss(_ctx(changed, fake, real_features=marked))
    assert float(d_loss_changed) == float(d_loss)


def test_head_spectral_norm_state_advances_in_d_loss_only():
    task = _task(spectral_norm=True)
    real, fake = _random_images(r=4, size=6, seed=10), _random_images(r=4, size=6, seed=11)
    u0 = task.head.sn_u.numpy().copy()
    task.g_loss(_ctx(real, fake))
    np.testing.assert_array_equal(task.head.sn_u.numpy(), u0)
    task.d_loss(_ctx(real, fake))
    assert not np.allclose(task.head.sn_u.numpy(), u0)
    assert task.d_layers == [task.head] and task.g_layers == []


@pytest.mark.parametrize("rotated_batch_size, num_replicas", [(3, 2), (16, 1)])
def test_build_rejects_bad_rotated_batch_size(rotated_batch_size, num_replicas):
    task = RotationTask(rotated_batch_size=rotated_batch_size)
    with pytest.raises(UserError, match="rotated_batch_size"):
        task.build(CornerD(), spectral_norm=False, global_batch=8, num_replicas=num_replicas)
