"""Running the real CLI on tiny configurations, and reading what it wrote."""
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR10_TAR = os.environ.get(
    "COMPARE_SSGAN_CIFAR10",
    os.path.join(os.path.dirname(REPO), "shared", "data", "cifar10", "cifar10-jpeg.tar.gz"))
IMAGE_FOLDER = f"dataset.image_folder='{CIFAR10_TAR}'"


def smoke_args(model_dir, *gin_files, params=(), schedule="train"):
    files = [os.path.join(REPO, "gin", f) for f in gin_files] + [os.path.join(REPO, "gin/presets/smoke.gin")]
    args = [f"--gin_file={f}" for f in files]
    args += [f"--gin_param={p}" for p in (IMAGE_FOLDER, *params)]
    return args + [f"--model_dir={model_dir}", f"--schedule={schedule}"]


def run_cli(args, env=None, timeout=300, check=True):
    """Runs `python -m compare_ssgan.main args`; returns the CompletedProcess."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    result = subprocess.run([sys.executable, "-m", "compare_ssgan.main", *args], cwd=REPO,
                            env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"CLI failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def checkpoint_values(path):
    """{variable name: value} of a checkpoint, skipping bookkeeping entries."""
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH") and "save_counter" not in name}


def assert_same_weights(path_a, path_b, atol=0.0, rtol=0.0, only=None):
    a, b = checkpoint_values(path_a), checkpoint_values(path_b)
    assert sorted(a) == sorted(b)
    names = [n for n in a if only is None or only in n]
    assert names
    for name in names:
        np.testing.assert_allclose(a[name], b[name], atol=atol, rtol=rtol, err_msg=name)


def build_smoke_gan(gin_file, params=()):
    """A GANModel from `gin_file` + the smoke preset (32x32, 10 classes, batch 8, seed 0),
    built in process for tests that call its d_step / g_step directly."""
    import gin
    import keras

    from compare_ssgan import architectures
    from compare_ssgan import main as cli
    from compare_ssgan.gans.model import GANModel

    gin.clear_config()
    cli.parse_gin([os.path.join(REPO, gin_file), os.path.join(REPO, "gin/presets/smoke.gin")], list(params))
    keras.utils.set_random_seed(0)
    gan = GANModel(architectures.architecture(), (32, 32, 3), 10, global_batch=8, num_replicas=1,
                   g_lr=1e-3, d_lr=1e-3, beta1=0.0, beta2=0.9)
    gin.clear_config()
    return gan
