"""Every shipped gin file parses and builds its model (tiny width; no data, no training)."""
import glob
import os

import gin
import keras
import pytest

from compare_ssgan import architectures, datasets
from compare_ssgan import main as cli
from compare_ssgan.gans.model import GANModel
from run_helpers import REPO

EXPERIMENTS = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "gin", "*", "*.gin"))
                     if "/presets/" not in p)


def test_every_dataset_folder_is_covered():
    assert {"gin/cifar10/ssgan.gin", "gin/imagenet/ssgan.gin", "gin/lsun_bedroom/ssgan.gin",
            "gin/celeba_hq/ssgan.gin", "gin/cifar10/biggan_cr_lt.gin"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("gin_file", EXPERIMENTS)
def test_gin_file_builds_its_model(gin_file):
    gin.clear_config()
    try:
        cli.parse_gin([os.path.join(REPO, gin_file), os.path.join(REPO, "gin/presets/smoke.gin")], [])
        data = datasets.Dataset()
        keras.utils.set_random_seed(0)
        gan = GANModel(architectures.architecture(), data.image_shape, data.num_classes, global_batch=8,
                       num_replicas=1, g_lr=1e-4, d_lr=1e-4, beta1=0.0, beta2=0.9)
        expected_name = os.path.splitext(os.path.basename(gin_file))[0]
        assert gan.name == expected_name
        images = gan.generator(keras.random.normal((2, gan.arch.z_dim)),
                               keras.ops.zeros((2,), "int32") if gan.conditional else None)
        assert tuple(images.shape[1:]) == data.image_shape
    finally:
        gin.clear_config()
