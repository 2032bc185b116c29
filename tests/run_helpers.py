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
