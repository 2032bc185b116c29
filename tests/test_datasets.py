"""Input pipelines: tfds (mocked, as no download is possible here) and image folders."""
import os

import gin
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from compare_ssgan import datasets, runner
from compare_ssgan import main as cli
from compare_ssgan.errors import UserError
from run_helpers import CIFAR10_TAR, REPO


def _folder(tmp_path, classes=datasets.KNOWN["cifar10"].class_names, per_class=3):
    rng = np.random.RandomState(0)
    for split in ("train", "test"):
        for c in classes:
            os.makedirs(tmp_path / split / c)
            for i in range(per_class):
                png = tf.io.encode_png(rng.randint(0, 256, (32, 32, 3), dtype=np.uint8))
                tf.io.write_file(str(tmp_path / split / c / f"{i}.png"), png)
    return str(tmp_path)


def test_image_folder_labels_pixels_and_order(tmp_path):
    data = datasets.Dataset("cifar10", image_folder=_folder(tmp_path))
    images, labels = next(iter(data.eval_input(batch_size=30)))
    assert images.shape == (30, 32, 32, 3) and images.dtype == tf.float32
    assert -1.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    # Fixed order for evaluation: class-major, labels in CIFAR-10 order.
    np.testing.assert_array_equal(labels.numpy(), np.repeat(np.arange(10), 3))
    first = tf.io.decode_png(tf.io.read_file(str(tmp_path / "test" / "airplane" / "0.png")))
    np.testing.assert_allclose(images[0].numpy(), first.numpy() / 127.5 - 1.0, atol=1e-6)


def test_training_order_is_seeded_and_skip_resumes_it(tmp_path):
    data = datasets.Dataset("cifar10", image_folder=_folder(tmp_path))
    take = lambda ds, n: np.concatenate([l.numpy() for _, l in ds.take(n)])  # noqa: E731
    a = take(data.train_input(6, seed=1), 10)
    b = take(data.train_input(6, seed=1), 10)
    c = take(data.train_input(6, seed=2), 10)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a[:30], np.sort(a[:30]))  # shuffled, not class-major
    resumed = take(data.train_input(6, seed=1, skip_examples=24), 6)
    np.testing.assert_array_equal(resumed, a[24:60])  # crosses the 30-image epoch boundary


def test_image_folder_with_wrong_classes_is_rejected(tmp_path):
    data = datasets.Dataset("cifar10", image_folder=_folder(tmp_path, classes=("cats", "dogs"), per_class=1))
    with pytest.raises(UserError, match="expected the cifar10 classes"):
        data.eval_input(batch_size=2)


def test_cifar10_tarball_matches_the_standard_splits():
    data = datasets.Dataset("cifar10", image_folder=CIFAR10_TAR)
    source, _, size = data._folder_source("test")
    assert size == 10_000
    labels = np.array([int(l) for _, l in source])
    np.testing.assert_array_equal(np.bincount(labels), [1000] * 10)


def test_training_through_tfds_pipeline(tmp_path):
    gin.clear_config()
    cli.parse_gin([os.path.join(REPO, "gin/cifar10/ssgan.gin"), os.path.join(REPO, "gin/presets/smoke.gin")],
                  ["options.training_steps=2"])
    with tfds.testing.mock_data(num_examples=40):
        data = datasets.Dataset()
        assert data.source_description == "tfds:cifar10"
        images, labels = next(iter(data.train_input(8, seed=0)))
        assert images.shape == (8, 32, 32, 3) and labels.dtype == tf.int32
        assert float(tf.reduce_min(images)) >= -1.0 and float(tf.reduce_max(images)) <= 1.0
        step = runner.run(str(tmp_path / "run"), "train", tf.distribute.get_strategy())
    gin.clear_config()
    assert step == 2
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-2")
