"""Speed options (options.steps_per_loop, jit_compile, precision): same training, fewer host trips."""
import os
import re

import pytest
import tensorflow as tf

import numpy as np

from run_helpers import assert_same_weights, checkpoint_values, run_cli, smoke_args

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


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_resumes(tmp_path, precision):
    model_dir = str(tmp_path / "run")
    params = [f"options.precision='{precision}'"]
    run_cli(smoke_args(model_dir, "cifar10/ssgan.gin", params=params + ["options.training_steps=2"]))
    resumed = run_cli(smoke_args(model_dir, "cifar10/ssgan.gin", params=params))
    assert "at step 2" in resumed.stderr and _latest(model_dir).endswith("ckpt-4")
    values = tf.train.load_checkpoint(_latest(model_dir))
    dtypes = values.get_variable_to_dtype_map()
    names = set(dtypes)
    # Weights, BN statistics, SN vectors and optimizer state all stay float32.
    assert not {n for n, d in dtypes.items() if d in (tf.float16, tf.bfloat16)}
    assert dtypes["generator_variables/0/.ATTRIBUTES/VARIABLE_VALUE"] == tf.float32
    if precision == "mixed_float16":  # the dynamic loss scale is checkpointed
        assert {"g_optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE",
                "d_optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE"} <= set(names)


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


def test_mirrored_two_cpus_with_every_option(tmp_path):
    model_dir = str(tmp_path / "run")
    params = ["strategy.name='mirrored'", "strategy.logical_cpus=2", "options.steps_per_loop=2",
              "options.precision='mixed_float16'"]
    result = run_cli(smoke_args(model_dir, "cifar10/ssgan.gin", params=params))
    assert "over 2 replica(s)" in result.stderr and "step 4/4" in result.stderr
    assert _latest(model_dir).endswith("ckpt-4")
    # XLA cannot read variables mirrored on another logical CPU: a UserError, not a crash.
    result = run_cli(smoke_args(str(tmp_path / "xla"), "cifar10/ssgan.gin",
                                params=params + ["options.jit_compile=True"]), check=False)
    assert result.returncode == 2 and "does not work with replicas on logical CPU" in result.stderr
