"""User mistakes end with one clear message naming the fix (exit code 2), no traceback."""
import json
import os

import gin
import pytest
import tensorflow as tf

from compare_ssgan import runner, training
from run_helpers import run_cli, smoke_args


def _fails_with(args, *fragments):
    result = run_cli(args, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr[-3000:]
    return result


def _fails_in_process(args, capsys, *fragments):
    """What `python -m compare_ssgan.main args` runs once absl has parsed the flags (the same
    main), in this process: one `error:` line and exit code 2. The subprocess path itself is
    run by the tests below that use _fails_with."""
    from compare_ssgan import main

    capsys.readouterr()
    main.FLAGS.unparse_flags()
    main.FLAGS(["compare_ssgan.main", *args])
    try:
        with pytest.raises(SystemExit) as exit_info:
            main.main([])
    finally:
        main.FLAGS.unparse_flags()
        gin.clear_config()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert sum(line.startswith("error:") for line in err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize("param, fragments", [
    ("options.trainng_steps=3", ["bad gin configuration", "trainng_steps"]),
    ("loss.fn=@hingee", ["bad gin configuration", "hingee"]),
    ("architecture.name='resnet_foo'", ["unknown architecture 'resnet_foo'", "resnet_cifar, sndcgan"]),
    ("penalty.fn=@wgan_gpp", ["bad gin configuration", "wgan_gpp"]),
    ("strategy.name='gpu_cluster'", ["unknown strategy 'gpu_cluster'", "mirrored"]),
    ("dataset.image_folder='/nonexistent/cifar'", ["image folder /nonexistent/cifar does not exist"]),
])
def test_bad_configuration(tmp_path, capsys, param, fragments):
    _fails_in_process(smoke_args(str(tmp_path / "run"), "cifar10/ssgan.gin", params=[param]), capsys, *fragments)


def test_missing_gin_file(tmp_path):
    _fails_with(["--gin_file=gin/cifar10/nope.gin", f"--model_dir={tmp_path}"], "nope.gin does not exist")


def test_unwritable_model_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    _fails_with(smoke_args(str(blocker / "run"), "cifar10/uncond.gin"), "is not writable")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, smoke_runs):
    model_dir = smoke_runs.copy("cifar10/uncond.gin", to=tmp_path / "run")  # shared: ckpt-2, ckpt-4
    # Resumed with a penalty weight that overflows float32: step 5's D loss is inf.
    result = _fails_with(
        smoke_args(model_dir, "cifar10/uncond.gin",
                   params=["options.training_steps=6", "penalty.fn=@wgan_gp", "penalty.weight=1e39",
                           "config_contract.accept=['penalty.fn', 'penalty.weight']"]),
        "non-finite loss at generator step 5", "last good checkpoint")
    assert "ckpt-4" in result.stderr
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-4")
    with open(os.path.join(model_dir, training.STOPPED_FILE)) as f:  # for a continuous_eval beside it
        assert json.load(f)["step"] == 5


def test_second_trainer_in_a_model_dir_is_refused(tmp_path):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    with runner.training_lock(str(model_dir)):  # as a trainer still running there holds it
        _fails_with(smoke_args(str(model_dir), "cifar10/uncond.gin"),
                    f"pid {os.getpid()} on", "is already training in --model_dir")
    assert not (model_dir / "checkpoints").exists()
    # Released with its holder, and the refused trainer left it free (every training run
    # takes this same lock, so the next trainer starts).
    with runner.training_lock(str(model_dir)):
        pass


@gin.configurable("branching_penalty")
def _branching_penalty(discriminator, real, fake, seed, pixel_scale=2.0):
    """A researcher's penalty with a Python branch on a tensor, which needs AutoGraph."""
    del discriminator, fake, seed, pixel_scale
    if tf.reduce_mean(real) > 2.0:
        return tf.constant(1.0)
    return tf.constant(0.0)


def test_python_branch_on_a_tensor_in_the_step_names_the_fix(tmp_path, capsys):
    with open(__file__) as f:
        line = next(i for i, text in enumerate(f, 1) if "if tf.reduce_mean(real) > 2.0" in text)
    args = smoke_args(str(tmp_path / "run"), "cifar10/uncond.gin", params=["penalty.fn=@branching_penalty"])
    _fails_in_process(args, capsys, "branches or loops in Python on a tensor's value", f"test_bad_input.py:{line}",
                      "tf.cond", "tf.autograph.to_graph")
