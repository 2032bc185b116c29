"""make_tables.py --table=representation: SS-GAN Table 3's layout and Figure 8's curves from the
runs' probes.jsonl."""
import json
import os
import subprocess
import sys

from run_helpers import REPO

PROBE = {"pooled_size": None, "max_features": 10000, "inverse_regularization": [1.0]}


def _write_run(root, model, seed, accuracies, probe=PROBE):
    """A run dir with probe records {step: [test top-1 per block]}."""
    run = os.path.join(root, "runs", f"{model}-s{seed}")
    os.makedirs(run)
    with open(os.path.join(run, "probes.jsonl"), "w") as f:
        for step, per_block in accuracies.items():
            for block, accuracy in enumerate(per_block):
                f.write(json.dumps({"step": step, "block": block, "test_top1": accuracy, "train_top1": 1.0,
                                    "model": model, "seed": seed, "model_dir": run, "dataset": "cifar10",
                                    "probe": probe, "num_train": 5000, "num_test": 2000, "converged": True,
                                    "train_split": "train", "test_split": "test"}) + "\n")


def _make_tables(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "make_tables.py"),
                           "--table=representation", *args], capture_output=True, text=True, timeout=120)


def test_representation_table_and_curves(tmp_path):
    root = str(tmp_path)
    _write_run(root, "uncond", 0, {500: [0.1, 0.1], 1000: [0.30, 0.40]})
    _write_run(root, "uncond", 1, {500: [0.1, 0.1], 1000: [0.34, 0.44]})
    _write_run(root, "ssgan", 0, {500: [0.2, 0.2], 1000: [0.50, 0.35]})
    result = _make_tables(f"--results={root}", "--format=markdown", f"--plot_dir={tmp_path / 'plots'}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "| Model | Block 0 | Block 1 |"
    # Final step only; mean ± sample std over seeds (count); the best model per block in bold.
    assert lines[2] == "| Uncond-GAN | 0.320 ± 0.028 (2) | **0.420 ± 0.028 (2)** |"
    assert lines[3] == "| SS-GAN | **0.500 (1)** | 0.350 (1) |"
    assert os.path.getsize(tmp_path / "plots" / "probe_vs_step_cifar10.png") > 0

    _write_run(root, "ssgan", 1, {1000: [0.5, 0.5]}, probe=dict(PROBE, inverse_regularization=[0.1]))
    mixed = _make_tables(f"--results={root}")
    assert mixed.returncode == 2 and "mix datasets or probe settings" in mixed.stderr
