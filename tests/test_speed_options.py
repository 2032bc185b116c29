"""Speed options (options.steps_per_loop, jit_compile, precision): same training, fewer host trips."""
import os
import re

import pytest
import tensorflow as tf

import numpy as np

from compare_ssgan import main as cli
from compare_ssgan import training
from compare_ssgan.errors import UserError
from run_helpers import assert_same_weights, checkpoint_values, run_cli, smoke_args

# The deterministic SS-GAN smoke run (4 steps; logs, samples, checkpoints every 2), shared with
# test_resume.py through the session's smoke_runs.
DETERMINISTIC = ("cifar10/ssgan.gin", ("options.deterministic=True",))


def _latest(model_dir):
    return tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))


def test_steps_per_loop_gives_the_same_weights(tmp_path, smoke_runs):
    one, _ = smoke_runs.get(*DETERMINISTIC)
    two = str(tmp_path / "two")  # 2 loop calls of 2 steps: the iterator carries on between calls
    result = run_cli(smoke_args(two, DETERMINISTIC[0], params=[*DETERMINISTIC[1], "options.steps_per_loop=2"]))
    assert "step 2/4" in result.stderr and "step 4/4" in result.stderr
    assert _latest(one).endswith("ckpt-4") and _latest(two).endswith("ckpt-4")
    assert sorted(os.listdir(os.path.join(two, "samples"))) == ["step_000002.png", "step_000004.png"]
    # Every variable: G, D, rotation head, both Adams, BN statistics, SN vectors, the step;
    # at the loop boundary (ckpt-2) too.
    assert_same_weights(_latest(one)[:-1] + "2", _latest(two)[:-1] + "2")
    assert_same_weights(_latest(one), _latest(two))


def test_interval_not_a_multiple_of_steps_per_loop_is_a_user_error():
    """Checked by options() (the CLI turns the UserError into one `error:` line and exit code
    2; test_bad_input.py runs that path)."""
    import gin

    try:
        cli.parse_gin([], ["options.steps_per_loop=4", "options.save_every=6", "options.log_every=4",
                           "options.sample_every=4"])
        with pytest.raises(UserError, match="options.save_every=6 is not a multiple of options.steps_per_loop=4"):
            training.options()
    finally:
        gin.clear_config()


def test_xla_agrees_with_the_graph_step(tmp_path):
    params = ["options.training_steps=1", "options.log_every=1", "options.save_every=1",
              "options.sample_every=1", "options.deterministic=True"]
    plain, xla = str(tmp_path / "plain"), str(tmp_path / "xla")
    logs = [run_cli(smoke_args(d, "cifar10/uncond.gin", params=params + extra)).stderr
            for d, extra in ((plain, []), (xla, ["options.jit_compile=True"]))]
    # Step 1's D losses come from the same initial weights: equal to float tolerance (G's come
    # after the D update, which may differ as below).
    losses = [dict(kv.split("=") for kv in re.search(r"step 1/1 \| (.*?) \|", log).group(1).split())
              for log in logs]
    assert losses[0].keys() == losses[1].keys()
    for name in [n for n in losses[0] if n.startswith("d_")]:
        assert float(losses[0][name]) == pytest.approx(float(losses[1][name]), rel=1e-3, abs=1e-4), name  # logged to 4 decimals
    # XLA fuses and reorders float arithmetic, and Adam's first update is lr * g / |g| whatever
    # the gradient's size, so a weight whose gradient is at rounding level may move +lr in one
    # run and -lr in the other: D's weights (one update, from the same state) agree within
    # 2 lr (lr = 2e-4). Not compared: G (its step sees that D, so its gradients may differ by
    # more) and the SN power-iteration vectors ([1, out]; advanced again from that D, they
    # differed by up to 4.5e-3, measured).
    a, b = checkpoint_values(_latest(plain)), checkpoint_values(_latest(xla))
    names = [n for n in a if n.startswith("discriminator_variables/") and not (a[n].ndim == 2 and a[n].shape[0] == 1)]
    assert len(names) >= 4
    for name in names:
        np.testing.assert_allclose(a[name], b[name], atol=2 * 2e-4 + 1e-5, rtol=0, err_msg=name)


def _float32_state(model_dir):
    """The checkpoint's dtypes: weights, BN statistics, SN vectors and optimizer state all stay
    float32 under a mixed-precision policy."""
    dtypes = tf.train.load_checkpoint(_latest(model_dir)).get_variable_to_dtype_map()
    assert not {n for n, d in dtypes.items() if d in (tf.float16, tf.bfloat16)}
    assert dtypes["generator_variables/0/.ATTRIBUTES/VARIABLE_VALUE"] == tf.float32
    return set(dtypes)


def test_mixed_bfloat16_trains(tmp_path):
    model_dir = str(tmp_path / "run")
    result = run_cli(smoke_args(model_dir, "cifar10/ssgan.gin", params=["options.precision='mixed_bfloat16'"]))
    assert "step 4/4" in result.stderr and _latest(model_dir).endswith("ckpt-4")
    names = _float32_state(model_dir)
    assert not any("dynamic_scale" in n for n in names)  # no loss scaling under bfloat16


def test_float16_overflow_skips_the_step_and_continues():
    import numpy as np

    from compare_ssgan import training
    from run_helpers import build_smoke_gan

    with training.precision_policy("mixed_float16"):
        gan = build_smoke_gan("gin/cifar10/uncond.gin")
    scale = float(gan.d_optimizer.dynamic_scale)
    before = [w.numpy() for w in gan.discriminator.trainable_weights]
    seed = tf.constant([0, 1], tf.int64)
    overflow = tf.fill([8, 32, 32, 3], 6e4)  # near float16's max: activations overflow to inf
    metrics = gan.d_step(overflow, tf.zeros([8], tf.int32), seed)
    assert not np.isfinite(float(metrics["d_loss"]))
    assert float(gan.d_optimizer.dynamic_scale) == scale / 2  # skipped: scale halved
    for a, w in zip(before, gan.discriminator.trainable_weights):
        np.testing.assert_array_equal(a, w.numpy())  # and no update
    metrics = gan.d_step(tf.zeros([8, 32, 32, 3]), tf.zeros([8], tf.int32), seed)
    assert np.isfinite(float(metrics["d_loss"]))
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, gan.discriminator.trainable_weights))


def test_mirrored_two_cpus_with_every_option_trains_and_resumes(tmp_path):
    model_dir = str(tmp_path / "run")
    params = ["strategy.name='mirrored'", "strategy.logical_cpus=2", "options.steps_per_loop=2",
              "options.precision='mixed_float16'"]
    result = run_cli(smoke_args(model_dir, "cifar10/ssgan.gin", params=params + ["options.training_steps=2"]))
    assert "over 2 replica(s)" in result.stderr and "step 2/2" in result.stderr
    resumed = run_cli(smoke_args(model_dir, "cifar10/ssgan.gin", params=params))
    assert "at step 2" in resumed.stderr and "step 4/4" in resumed.stderr
    assert _latest(model_dir).endswith("ckpt-4")
    # The dynamic loss scale is checkpointed (and restored: the resume asserts every object matched).
    assert {"g_optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE",
            "d_optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE"} <= _float32_state(model_dir)
    # XLA cannot read variables mirrored on another logical CPU: a UserError, not a crash.
    result = run_cli(smoke_args(str(tmp_path / "xla"), "cifar10/ssgan.gin",
                                params=params + ["options.jit_compile=True"]), check=False)
    assert result.returncode == 2 and "does not work with replicas on logical CPU" in result.stderr
