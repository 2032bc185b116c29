"""One short real training run per model x architecture, through the CLI."""
import math
import os

import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from run_helpers import run_cli, smoke_args

MODELS = ["cifar10/uncond.gin", "cifar10/ssgan.gin", "cifar10/rot_only.gin"]
ARCHITECTURES = ["resnet_cifar", "sndcgan"]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("model", MODELS)
def test_short_run_writes_everything(tmp_path, model, architecture):
    model_dir = str(tmp_path / "run")
    result = run_cli(smoke_args(model_dir, model, params=[f"architecture.name='{architecture}'"]))
    # training_steps=4, save/sample every 2 in the smoke preset.
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-4")
    assert sorted(os.listdir(os.path.join(model_dir, "samples"))) == ["step_000002.png", "step_000004.png"]
    grid = tf.io.decode_png(tf.io.read_file(os.path.join(model_dir, "samples", "step_000004.png")))
    assert grid.shape == (8 * 32, 8 * 32, 3)
    config = open(os.path.join(model_dir, "operative_config.gin")).read()
    assert f"architecture.name = '{architecture}'" in config
    assert "options.training_steps = 4" in config
    events = event_accumulator.EventAccumulator(os.path.join(model_dir, "train"))
    events.Reload()
    tags = events.Tags()["tensors"]
    assert {"d_loss", "g_loss", "steps_per_second"} <= set(tags)
    for tag in ("d_loss", "g_loss"):
        values = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]
        assert [e.step for e in events.Tensors(tag)] == [2, 4]
        assert all(math.isfinite(v) for v in values)
    if "uncond" not in model:
        assert "rotation_loss_real" in tags and "rotation_accuracy_real" in tags
        assert "rotation_accuracy_real=" in result.stderr  # the progress log line
    assert "steps/s | ETA" in result.stderr
