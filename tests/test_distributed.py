"""Mirrored (2 logical CPUs) and multi-worker (2 local processes) agree with one device.

Configurations where they should agree: no batch norm in G (per-replica batch statistics
differ from global ones by design) and, for SS-GAN, every image rotated (so the rotated set
is the same however the batch is split). Latents are sliced from one global draw, so every
replica count sees the same z.

TensorFlow's Eigen kernels, not oneDNN's: on CPUs with AVX-512 oneDNN picks its kernels by batch
size, so one device (batch 8) and two replicas (4 each) round differently, and Adam turns that
into weight differences up to 3.4e-4 after 3 steps (measured on an Intel Xeon, 2026-12-05; on AMD
EPYC they agreed within 1e-4). The tests check the strategies' arithmetic, not oneDNN's.
"""
import json
import os
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from run_helpers import REPO, assert_same_weights, checkpoint_values, run_cli, smoke_args

AGREE = ["architecture.g_norm='none'", "options.deterministic=True", "options.training_steps=3",
         "options.save_every=1", "options.g_lr=0.001", "options.d_lr=0.001",
         "RotationTask.rotated_batch_size=8"]
EIGEN = {"TF_ENABLE_ONEDNN_OPTS": "0"}  # see the module docstring


def _latest(model_dir):
    return tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))


def test_mirrored_two_cpus_matches_single_device(tmp_path, smoke_runs):
    # SS-GAN: Uncond-GAN's whole step plus the rotation task (Uncond-GAN alone adds no code path).
    model = "cifar10/ssgan.gin"
    single, _ = smoke_runs.get(model, AGREE, env=EIGEN)  # shared with the multi-worker test
    mirrored = str(tmp_path / "mirrored")
    result = run_cli(smoke_args(mirrored, model, params=AGREE + [
        "strategy.name='mirrored'", "strategy.logical_cpus=2"]), env=EIGEN)
    assert "over 2 replica(s)" in result.stderr
    assert _latest(single).endswith("ckpt-3") and _latest(mirrored).endswith("ckpt-3")
    # The tolerance below (1e-4) is a tenth of one Adam step (lr 1e-3) and far smaller than what two
    # steps of training change; compare_gan's N(0, 0.02) init at test widths makes G's outputs and
    # gradients tiny, so float-order differences between replica counts reach ~5e-5.
    first, last = checkpoint_values(_latest(single)[:-1] + "1"), checkpoint_values(_latest(single))
    moved = max(abs(first[k] - last[k]).max() for k in last if k.startswith(("generator_variables/", "discriminator_variables/")))
    assert moved > 1e-3
    assert_same_weights(_latest(single), _latest(mirrored), atol=1e-4, rtol=2e-4, only="generator_variables/")
    assert_same_weights(_latest(single), _latest(mirrored), atol=1e-4, rtol=2e-4, only="discriminator_variables/")


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_two_processes_matches_single_device(tmp_path, smoke_runs):
    single, _ = smoke_runs.get("cifar10/ssgan.gin", AGREE, env=EIGEN)
    multi = str(tmp_path / "multi")
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    args = smoke_args(multi, "cifar10/ssgan.gin", params=AGREE + ["strategy.name='multi_worker'"])
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "compare_ssgan.main", *args], cwd=REPO, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, TF_CONFIG=tf_config, TF_CPP_MIN_LOG_LEVEL="2", **EIGEN)))
    outputs = [p.communicate(timeout=400) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-4000:]
    assert "over 2 replica(s)" in outputs[0][1]
    assert _latest(multi).endswith("ckpt-3")
    assert not [d for d in os.listdir(multi) if d.startswith(".tmp_")]  # worker copies removed
    assert_same_weights(_latest(single), _latest(multi), atol=1e-4, rtol=2e-4, only="generator_variables/")
    assert_same_weights(_latest(single), _latest(multi), atol=1e-4, rtol=2e-4, only="discriminator_variables/")
