"""Speed options (options.steps_per_loop, jit_compile, precision): same training, fewer host trips."""
import os

import pytest
import tensorflow as tf

from run_helpers import assert_same_weights, run_cli, smoke_args

DETERMINISTIC = ["options.deterministic=True", "options.training_steps=8", "options.log_every=4",
                 "options.save_every=4", "options.sample_every=4"]


def _latest(model_dir):
    return tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))


def test_steps_per_loop_gives_the_same_weights(tmp_path):
    one, four = str(tmp_path / "one"), str(tmp_path / "four")
    run_cli(smoke_args(one, "cifar10/ssgan.gin", params=DETERMINISTIC))
    result = run_cli(smoke_args(four, "cifar10/ssgan.gin", params=DETERMINISTIC + ["options.steps_per_loop=4"]))
    assert "step 4/8" in result.stderr and "step 8/8" in result.stderr
    assert _latest(one).endswith("ckpt-8") and _latest(four).endswith("ckpt-8")
    assert sorted(os.listdir(os.path.join(four, "samples"))) == ["step_000004.png", "step_000008.png"]
    # Every variable: G, D, rotation head, both Adams, BN statistics, SN vectors, the step.
    assert_same_weights(_latest(one), _latest(four))


def test_interval_not_a_multiple_of_steps_per_loop_is_a_user_error(tmp_path):
    result = run_cli(smoke_args(str(tmp_path / "run"), "cifar10/uncond.gin",
                                params=["options.steps_per_loop=4", "options.save_every=6",
                                        "options.log_every=4", "options.sample_every=4"]), check=False)
    assert result.returncode == 2
    assert "options.save_every=6 is not a multiple of options.steps_per_loop=4" in result.stderr
