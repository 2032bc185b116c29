"""Resuming: an interrupted run ends in the same state as an uninterrupted one."""
import json
import os
import signal
import subprocess
import sys
import time

import tensorflow as tf

from run_helpers import REPO, assert_same_weights, run_cli, smoke_args

DETERMINISTIC = ["options.deterministic=True"]  # 4 steps, checkpoints every 2 (smoke preset)


def test_stopped_and_restarted_run_matches_uninterrupted(tmp_path, smoke_runs):
    straight, _ = smoke_runs.get("cifar10/ssgan.gin", DETERMINISTIC)  # shared with test_speed_options.py
    resumed = str(tmp_path / "resumed")
    run_cli(smoke_args(resumed, "cifar10/ssgan.gin", params=DETERMINISTIC + ["options.training_steps=2"]))
    second = run_cli(smoke_args(resumed, "cifar10/ssgan.gin", params=DETERMINISTIC))
    assert "Resuming from" in second.stderr and "at step 2" in second.stderr
    assert "Training steps 2 -> 4" in second.stderr
    ckpt = lambda d: tf.train.latest_checkpoint(os.path.join(d, "checkpoints"))  # noqa: E731
    assert ckpt(straight).endswith("ckpt-4") and ckpt(resumed).endswith("ckpt-4")
    # Every variable: G, D, rotation head, both Adams, BN statistics, SN vectors, the step.
    assert_same_weights(ckpt(straight), ckpt(resumed))
    # Each training session says where it ran (compare_ssgan/environment.py).
    with open(os.path.join(resumed, "training_sessions.jsonl")) as f:
        sessions = [json.loads(line) for line in f]
    assert [(s["start_step"], s["target_step"]) for s in sessions] == [(0, 2), (2, 4)]
    assert all(s["tensorflow"] == tf.__version__ and s["replicas"] == 1 for s in sessions)


def test_rerun_of_finished_run_does_nothing(tmp_path, smoke_runs):
    model_dir = smoke_runs.copy("cifar10/uncond.gin", to=tmp_path / "run")  # shared: 4 steps
    again = run_cli(smoke_args(model_dir, "cifar10/uncond.gin"))
    assert "Already trained to step 4" in again.stderr


def test_resume_after_kill_9(tmp_path):
    model_dir = str(tmp_path / "run")
    args = smoke_args(model_dir, "cifar10/uncond.gin",
                      params=["options.training_steps=100000", "options.save_every=1"])
    proc = subprocess.Popen([sys.executable, "-m", "compare_ssgan.main", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    checkpoints = os.path.join(model_dir, "checkpoints")
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            latest = tf.train.latest_checkpoint(checkpoints)
            if latest and int(latest.rsplit("-", 1)[1]) >= 3:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no checkpoint appeared")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = int(tf.train.latest_checkpoint(checkpoints).rsplit("-", 1)[1])
    target = killed_at + 2
    result = run_cli(smoke_args(model_dir, "cifar10/uncond.gin",
                                params=[f"options.training_steps={target}", "options.save_every=1"]))
    assert f"at step {killed_at}" in result.stderr
    assert tf.train.latest_checkpoint(checkpoints).endswith(f"ckpt-{target}")
