"""tfds pipelines of every known dataset, on tfds.testing.mock_data (no download here): shapes,
[-1, 1] range, int32 labels (zeros for unlabelled datasets), the split strings handed to tfds,
central crop + resize, the manual-download message, and unlabelled image folders."""
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from compare_ssgan import datasets
from compare_ssgan.errors import UserError

EXPECTED = {  # name: (tfds name, image shape, num_classes, train split, eval split)
    "cifar10": ("cifar10", (32, 32, 3), 10, "train", "test"),
    "imagenet2012": ("imagenet2012", (128, 128, 3), 1000, "train", "validation"),
    "celeb_a_hq": ("celeb_a_hq/128", (128, 128, 3), 1, "train[:-3000]", "train[-3000:]"),
    "lsun_bedroom": ("lsun/bedroom", (128, 128, 3), 1, "train[10000:]", "train[:10000]"),
    "stl10": ("stl10", (48, 48, 3), 1, "unlabelled", "test"),
}


@pytest.fixture
def recorded_splits(monkeypatch):
    """The (tfds name, split) pairs the pipeline asks tfds for."""
    calls, real_builder = [], tfds.builder

    def builder(name, **kwargs):
        b = real_builder(name, **kwargs)
        as_dataset = b.as_dataset

        def recording_as_dataset(*args, split=None, **kw):
            calls.append((name, split))
            return as_dataset(*args, split=split, **kw)

        b.as_dataset = recording_as_dataset
        return b

    monkeypatch.setattr(tfds, "builder", builder)
    return calls


def test_known_datasets_are_the_expected_ones():
    assert set(datasets.KNOWN) == set(EXPECTED)
    for name, (tfds_name, shape, _, train, evaluation) in EXPECTED.items():
        info = datasets.KNOWN[name]
        assert (info.tfds_name, info.image_shape, info.train_split, info.eval_split) == (tfds_name, shape, train, evaluation)
        for split in (train, evaluation):  # valid tfds split strings
            tfds.core.ReadInstruction.from_spec(split)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pipeline_on_mock_data(name, recorded_splits):
    tfds_name, shape, num_classes, train_split, eval_split = EXPECTED[name]
    with tfds.testing.mock_data(num_examples=6):
        data = datasets.Dataset(name)
        assert data.image_shape == shape and data.num_classes == num_classes
        assert data.source_description == f"tfds:{tfds_name}"
        images, labels = next(iter(data.train_input(4, seed=0)))
        eval_images, eval_labels = next(iter(data.eval_input(batch_size=3)))
    assert recorded_splits == [(tfds_name, train_split), (tfds_name, eval_split)]
    for x, y, n in ((images, labels, 4), (eval_images, eval_labels, 3)):
        assert x.shape == (n,) + shape and x.dtype == tf.float32
        assert -1.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
        assert float(tf.math.reduce_std(x)) > 0.05  # real pixels, not a constant
        assert y.dtype == tf.int32 and y.shape == (n,)
        assert np.all((0 <= y.numpy()) & (y.numpy() < num_classes))
        if num_classes == 1:
            np.testing.assert_array_equal(y.numpy(), 0)


def test_central_crop_then_resize():
    # a 20x40 image: left and right quarters 0, the central 20x20 square 255
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, 10:30] = 255
    out = datasets.central_crop_and_resize(tf.constant(image), 8, 8).numpy()
    assert out.shape == (8, 8, 3)
    np.testing.assert_allclose(out, 255.0, atol=1e-3)  # the crop kept only the square
    same = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    np.testing.assert_allclose(datasets.central_crop_and_resize(tf.constant(same), 32, 32).numpy(), same, atol=1e-4)
    tall = datasets.central_crop_and_resize(tf.zeros([90, 30, 3], tf.uint8), 48, 48)
    assert tall.shape == (48, 48, 3)


@pytest.mark.parametrize("name,needle", [("imagenet2012", "ILSVRC2012_img_train.tar"),
                                         ("celeb_a_hq", "data128x128.tar")])
def test_manual_download_error_names_the_files_and_the_place(tmp_path, name, needle):
    data = datasets.Dataset(name, data_dir=str(tmp_path))
    with pytest.raises(UserError) as error:
        data.eval_input(batch_size=2)
    message = str(error.value)
    assert needle in message
    assert os.path.join(str(tmp_path), "downloads", "manual") in message


def test_unlabelled_image_folder(tmp_path):
    rng = np.random.RandomState(0)
    for split in ("unlabelled", "test"):
        for sub in ("", "any_name"):
            os.makedirs(tmp_path / split / sub, exist_ok=True)
            for i in range(2):
                png = tf.io.encode_png(rng.randint(0, 256, (96, 96, 3), dtype=np.uint8))
                tf.io.write_file(str(tmp_path / split / sub / f"{i}.png"), png)
    data = datasets.Dataset("stl10", image_folder=str(tmp_path))
    images, labels = next(iter(data.eval_input(batch_size=4)))
    assert images.shape == (4, 48, 48, 3)
    np.testing.assert_array_equal(labels.numpy(), 0)
    images, labels = next(iter(data.train_input(3, seed=0)))
    assert images.shape == (3, 48, 48, 3) and labels.dtype == tf.int32
