"""Short real training runs through the CLI: every model and every CIFAR architecture at least
once (a model's task and an architecture's networks are independent code paths, so their full
product adds no path)."""
import math
import os

import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

CASES = [("cifar10/uncond.gin", "resnet_cifar"),  # the gin files' own architecture: shared run
         ("cifar10/ssgan.gin", "sndcgan"),
         ("cifar10/rot_only.gin", "resnet_cifar")]


@pytest.mark.parametrize("model, architecture", CASES)
def test_short_run_writes_everything(smoke_runs, model, architecture):
    params = [] if architecture == "resnet_cifar" else [f"architecture.name='{architecture}'"]
    model_dir, result = smoke_runs.get(model, params)
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
