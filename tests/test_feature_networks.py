"""Feature networks: the registry, Inception loading + TF-GAN preprocessing (with a stand-in
SavedModel of the same signature), and the shipped CIFAR-10 classifier."""
import os
import re
import shutil
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf

from compare_ssgan import datasets, results
from compare_ssgan.errors import UserError
from compare_ssgan.eval import feature_networks
from run_helpers import CIFAR10_TAR

# Pixels of the 299x299 input the stand-in reports as its "pool_3" features.
_PROBE = np.arange(0, 299, 37)  # 0, 37, ..., 296: 9 rows x 9 columns x 3 channels = 243 values


class StandInInception(tf.Module):
    """TF-GAN Inception's interface: [N, 299, 299, 3] float in [-1, 1] ->
    {'pool_3': [N, 1, 1, 243], 'logits': [N, 1008]}. pool_3 holds probed input pixels, so the
    test sees exactly what the preprocessing fed the network."""

    def __init__(self):
        super().__init__()
        self.projection = tf.Variable(
            tf.random.stateless_normal([243, 1008], seed=[1, 2]), name="projection")

    @tf.function(input_signature=[tf.TensorSpec([None, 299, 299, 3], tf.float32)])
    def __call__(self, images):
        probed = tf.gather(tf.gather(images, _PROBE, axis=1), _PROBE, axis=2)
        pool = tf.reshape(probed, [-1, 243])
        return {"pool_3": tf.reshape(pool, [-1, 1, 1, 243]), "logits": pool @ self.projection}


@pytest.fixture(scope="session")
def inception_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("inception") / "saved_model")
    tf.saved_model.save(StandInInception(), path)
    return path


def test_one_inception_at_two_paths_is_one_feature_network(inception_dir, clean_gin, tmp_path):
    """Results name the SavedModel by a hash of its files, not by where it lay: copies score as
    one protocol (one table row), a changed model as another."""
    def identity(path):
        gin.bind_parameter("inception.path", path)
        return results.network_identity(feature_networks.build("inception").info.as_dict())

    copy = shutil.copytree(inception_dir, tmp_path / "elsewhere")
    (copy / "notes.txt").write_text("not part of the model")
    assert identity(str(copy)) == identity(inception_dir)
    with open(os.path.join(copy, "assets", "note.txt"), "w") as f:
        f.write("changed")  # a file more: still loads, no longer the same directory
    assert identity(str(copy)) != identity(inception_dir)


def _tf1_bilinear_reference(images, size):
    """Independent numpy version of TF1 bilinear resize (align_corners=False, no half-pixel
    centres): source coordinate = dst * in / out, clamped at the border."""
    n, h, w, c = images.shape

    def axis(out, inp):
        src = np.arange(out) * (inp / out)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, inp - 1), src - lo

    y0, y1, fy = axis(size, h)
    x0, x1, fx = axis(size, w)
    top = images[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + images[:, y0][:, :, x1] * fx[None, None, :, None]
    bottom = images[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + images[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bottom * fy[None, :, None, None]


def test_unknown_feature_network_lists_valid_names():
    with pytest.raises(UserError, match="valid names: cifar10_classifier, inception"):
        feature_networks.build("inceptoin")


def test_inception_preprocessing_matches_tf_gan():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
    out = feature_networks.inception_preprocess(images).numpy()
    assert out.shape == (2, 299, 299, 3)
    expected = (_tf1_bilinear_reference((images.astype(np.float64) + 1) * 127.5, 299) - 128) / 128
    np.testing.assert_allclose(out, expected, atol=2e-5, rtol=0)
    # TF-GAN's mapping of [0, 255] to (v - 128) / 128: -1 -> -1, +1 -> 127/128.
    extremes = feature_networks.inception_preprocess(np.stack([-np.ones((32, 32, 3)), np.ones((32, 32, 3))])).numpy()
    np.testing.assert_allclose(extremes[0], -1.0, atol=1e-6)
    np.testing.assert_allclose(extremes[1], 127 / 128, atol=1e-6)


def test_inception_from_local_saved_model(inception_dir, clean_gin):
    gin.bind_parameter("inception.path", inception_dir)
    gin.bind_parameter("inception.batch_size", 3)  # several batches, the last one partial
    network = feature_networks.build("inception")
    assert network.info.name == "inception"
    assert network.info.label == "FID (Inception)"
    where, digest = network.info.source.split(" ")
    assert where == f"saved_model:{os.path.abspath(inception_dir)}" and re.fullmatch(r"sha256:[0-9a-f]{12}", digest)
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, size=(7, 32, 32, 3)).astype(np.float32)
    features, logits = network(images)
    assert features.shape == (7, 243) and logits.shape == (7, 1008)
    assert features.dtype == np.float32 and logits.dtype == np.float32
    # What the network saw: TF-GAN's preprocessing of the images, resized to 299x299.
    seen = _tf1_bilinear_reference((images.astype(np.float64) + 1) * 127.5, 299)[:, _PROBE][:, :, _PROBE]
    np.testing.assert_allclose(features, ((seen - 128) / 128).reshape(7, -1), atol=2e-5, rtol=0)
    assert features.min() >= -1.0 and features.max() <= 1.0


def test_inception_errors(tmp_path, clean_gin, monkeypatch):
    gin.bind_parameter("inception.path", str(tmp_path))  # a directory, but no SavedModel
    with pytest.raises(UserError, match="without saved_model.pb"):
        feature_networks.build("inception")
    gin.bind_parameter("inception.path", feature_networks.INCEPTION_TFHUB)
    monkeypatch.setitem(sys.modules, "tensorflow_hub", None)  # makes the import fail
    with pytest.raises(UserError, match="tensorflow_hub is not installed"):
        feature_networks.build("inception")
    gin.bind_parameter("inception.path", str(tmp_path / "missing"))
    with pytest.raises(UserError, match="neither a local SavedModel directory nor a TF Hub handle"):
        feature_networks.build("inception")


def test_shipped_cifar10_classifier_classifies_test_images(clean_gin):
    network = feature_networks.build("cifar10_classifier")
    info = network.info.as_dict()
    assert info["name"] == "cifar10_classifier"
    assert info["label"] == "FID (CIFAR-10 classifier)"
    assert "not comparable to papers' FID" in info["note"]
    assert info["source"].startswith("shipped:compare_ssgan/eval/weights/cifar10_classifier.weights.h5 sha256:")
    data = datasets.Dataset(name="cifar10", image_folder=CIFAR10_TAR)
    images, labels = [], []
    for x, y in data.eval_input(100, split="test"):  # class-major order: take every 10th image
        images.append(x.numpy()[::10])
        labels.append(y.numpy()[::10])
    images, labels = np.concatenate(images), np.concatenate(labels)
    features, logits = network(images)
    assert features.shape == (1000, feature_networks.CIFAR10_FEATURE_DIM) and logits.shape == (1000, 10)
    assert (features >= 0).all()  # post-ReLU features
    accuracy = float(np.mean(np.argmax(logits, 1) == labels))
    assert 0.7 < accuracy <= 1.0, accuracy  # the shipped network reaches ~80% on the test split
