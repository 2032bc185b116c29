"""make_tables.py --table=representation: SS-GAN Table 3's layout and Figure 8's curves from the
runs' probes.jsonl."""
import json
import os
import subprocess
import sys

import pytest

from compare_ssgan import results
from run_helpers import REPO

PROBE = {"pooled_size": None, "max_features": 10000, "inverse_regularization": [1.0]}


def _write_run(root, model, seed, accuracies, probe=PROBE, rotation=None, **run_fields):
    """A run dir with probe records {step: [test top-1 per block]}."""
    os.makedirs(os.path.join(root, "runs"), exist_ok=True)
    run = os.path.join(root, "runs", f"{model}-s{seed}-{len(os.listdir(os.path.join(root, 'runs')))}")
    os.makedirs(run)
    with open(os.path.join(run, "probes.jsonl"), "w") as f:
        for step, per_block in accuracies.items():
            for block, accuracy in enumerate(per_block):
                record = results.probe_record(step, block, 1.0, accuracy, 512, "average-pooled to 4x4", probe, {
                    "model": model, "seed": seed, "model_dir": run, "dataset": "cifar10", "num_train": 5000,
                    "num_test": 2000, "converged": True, "train_split": "train", "test_split": "test",
                    "beta1": 0.0, "disc_iters": 1, "d_rotation_accuracy": rotation, **run_fields})
                f.write(json.dumps(record) + "\n")


def _make_tables(*args, table="representation"):
    return subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "make_tables.py"),
                           f"--table={table}", *args], capture_output=True, text=True, timeout=120)


def test_representation_table_and_curves(tmp_path):
    root = str(tmp_path / "results")
    os.makedirs(root)
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
    assert lines[4] == "| SS-GAN vs Uncond-GAN | +0.180 | -0.070 |"  # one SS-GAN seed: no interval, no p
    assert os.path.getsize(tmp_path / "plots" / "probe_vs_step_cifar10.png") > 0

    # SS-GAN's rotation task: D's rotation accuracy on the test images gets a last column.
    _write_run(root, "rot_only", 0, {1000: [0.2, 0.3]}, rotation=0.70)
    _write_run(root, "rot_only", 1, {1000: [0.2, 0.3]}, rotation=0.80)
    lines = _make_tables(f"--results={root}").stdout.splitlines()
    assert lines[0] == "| Model | Block 0 | Block 1 | D rotation acc. |"
    assert lines[3] == "| Rot-only | 0.200 ± 0.000 (2) | 0.300 ± 0.000 (2) | 0.750 ± 0.071 (2) |"  # Table 3's order
    assert lines[2].endswith("| — |") and lines[4].endswith("| — |")  # Uncond-GAN, SS-GAN

    # Never averaged or compared across training configurations: a table (and a plot) each.
    _write_run(root, "uncond", 2, {1000: [0.9, 0.9]}, beta1=0.5)
    split = _make_tables(f"--results={root}", f"--plot_dir={tmp_path / 'split_plots'}")
    assert split.returncode == 0, split.stderr
    first, second = split.stdout.split("**Configuration 2 of 2: beta1 = 0.5**\n")
    assert first.startswith("**Configuration 1 of 2: beta1 = 0**\n")
    assert "| Uncond-GAN | 0.320 ± 0.028 (2) | **0.420 ± 0.028 (2)** | — |" in first  # seed 2 not averaged in
    assert "SS-GAN vs Uncond-GAN" in first
    assert "| Uncond-GAN | 0.900 (1) | 0.900 (1) |" in second and "SS-GAN" not in second
    assert sorted(os.listdir(tmp_path / "split_plots")) == ["probe_vs_step_cifar10_beta1-0.5.png",
                                                            "probe_vs_step_cifar10_beta1-0.png"]
    latex = _make_tables(f"--results={root}", "--format=latex").stdout
    assert latex.count("\\paragraph{Configuration") == 2 and latex.count("\\begin{tabular}") == 2
    csv_text = _make_tables(f"--results={root}", "--format=csv").stdout
    assert "# Configuration 2 of 2: beta1 = 0.5\nModel,Block 0,Block 1\nUncond-GAN,0.900 (1),0.900 (1)\n" in csv_text
    per_run = _make_tables(f"--results={root}", table="representation_runs").stdout.splitlines()
    assert per_run[0].startswith("| beta1 | Model | Seed | Step |")
    rows = [line for line in per_run[2:] if line.startswith("| ")]
    assert rows[-1].startswith("| 0.5 | Uncond-GAN | 2 | 1000 | 0.900 | 0.900 |")  # after every beta1 0 row
    assert all(row.startswith("| 0 | ") for row in rows[:-1])
    assert any(line.startswith("| 0 | Uncond-GAN | 0 | 1000 | 0.300 | 0.400 |") for line in per_run)
    other = str(tmp_path / "other")
    os.makedirs(other)
    _write_run(other, "uncond", 0, {1000: [0.3, 0.4]})
    _write_run(other, "ssgan", 0, {1000: [0.3, 0.4]}, disc_iters=2)
    models = _make_tables(f"--results={other}")
    assert models.returncode == 0 and "disc_iters = 2" in models.stdout and "vs Uncond-GAN" not in models.stdout
    arch = {"name": "resnet_cifar", "width": 0.25, "d_width": None, "g_norm": "batch_norm", "projection": False}
    sized = str(tmp_path / "sized")
    os.makedirs(sized)
    _write_run(sized, "uncond", 0, {1000: [0.3, 0.4]}, architecture_config=arch)
    _write_run(sized, "cond", 0, {1000: [0.3, 0.4]},  # Cond-GAN's own architecture: comparable
               architecture_config=dict(arch, g_norm="conditional_batch_norm", projection=True))
    comparable = _make_tables(f"--results={sized}")
    assert comparable.returncode == 0 and "Configuration" not in comparable.stdout
    _write_run(sized, "ssgan", 0, {1000: [0.5, 0.6]}, architecture_config=dict(arch, width=1.0))
    wider = _make_tables(f"--results={sized}")
    assert wider.returncode == 0 and "**Configuration 2 of 2: network size.width = 1**" in wider.stdout
    # Seeds of one model that differ in what makes the model: refused, never averaged.
    _write_run(sized, "cond", 1, {1000: [0.3, 0.4]}, architecture_config=dict(arch, projection=True))
    refused = _make_tables(f"--results={sized}")
    assert refused.returncode == 2 and "cond runs" in refused.stderr and "architecture_config" in refused.stderr

    mixed_root = str(tmp_path / "mixed")
    os.makedirs(mixed_root)
    _write_run(mixed_root, "ssgan", 0, {1000: [0.5, 0.5]})
    _write_run(mixed_root, "ssgan", 1, {1000: [0.7, 0.7]}, probe=dict(PROBE, inverse_regularization=[0.1]))
    mixed = _make_tables(f"--results={mixed_root}").stdout
    assert mixed.index("probe.inverse_regularization = [0.1]") < mixed.index("| SS-GAN | 0.700 (1) | 0.700 (1) |")
    assert mixed.index("probe.inverse_regularization = [1]") < mixed.index("| SS-GAN | 0.500 (1) | 0.500 (1) |")
    assert "| SS-GAN | 0.500 (1) | 0.500 (1) |" not in mixed.split("probe.inverse_regularization = [1]")[0]


def test_a_run_probed_only_to_an_earlier_step_is_named_not_averaged(tmp_path):
    """A run that failed (or is still being probed) before the table's final step: its last
    probe is in no cell; a run moved after probing (another model_dir) is still one seed."""
    root = str(tmp_path / "results")
    _write_run(root, "uncond", 0, {500: [0.1, 0.1], 1000: [0.30, 0.40]})
    _write_run(root, "uncond", 1, {500: [0.9, 0.9]})  # failed after step 500
    _write_run(root, "ssgan", 0, {500: [0.2, 0.2], 1000: [0.50, 0.60]})  # moved before step 1000's probe
    moved = os.path.join(root, "runs", sorted(os.listdir(os.path.join(root, "runs")))[-1], "probes.jsonl")
    lines = open(moved).read().splitlines()
    with open(moved, "w") as f:
        f.write("\n".join(lines[:2] + [json.dumps(dict(json.loads(x), model_dir="/elsewhere")) for x in lines[2:]]) + "\n")
    result = _make_tables(f"--results={root}")
    assert result.returncode == 0, result.stderr
    assert "| Uncond-GAN | 0.300 (1) | 0.400 (1) |" in result.stdout
    assert "| SS-GAN | **0.500 (1)** | **0.600 (1)** |" in result.stdout
    assert "at GAN step 1000, the last step the runs were probed at" in result.stdout
    assert "In no cell (probed only to an earlier step): uncond-s1-1 (step 500)." in result.stdout


def test_a_sweep_binding_splits_the_table(tmp_path):
    """A grid over a gin binding the probe records do not carry (e.g. the rotation loss weight):
    the runs' sweep_spec.json tells the tables apart; 0 and 0.0 are one value."""
    root = str(tmp_path / "sweep")
    for seed, weight in ((0, "0.5"), (1, "0.5"), (2, "1.0"), (3, "1")):
        _write_run(root, "ssgan", seed, {1000: [0.1 * (seed + 1), 0.5]})
    for run, (_, weight) in zip(sorted(os.listdir(os.path.join(root, "runs"))),
                                ((0, "0.5"), (1, "0.5"), (2, "1.0"), (3, "1"))):
        with open(os.path.join(root, "runs", run, "sweep_spec.json"), "w") as f:
            json.dump({"gin_files": ["gin/cifar10/ssgan.gin", "gin/presets/mini.gin"],
                       "bindings": [["RotationTask.weight", weight], ["dataset.image_folder", f"'/data/{run}'"]],
                       "labels": {}, "axes": []}, f)
    result = _make_tables(f"--results={root}")
    assert result.returncode == 0, result.stderr
    halves = result.stdout.split("**Configuration 2 of 2: RotationTask.weight = 1**")
    assert halves[0].startswith("**Configuration 1 of 2: RotationTask.weight = 0.5**")
    assert "| SS-GAN | 0.150 ± 0.071 (2) | 0.500 ± 0.000 (2) |" in halves[0]  # seeds 0 and 1
    assert "| SS-GAN | 0.350 ± 0.071 (2) | 0.500 ± 0.000 (2) |" in halves[1]  # seeds 2 and 3: 1.0 == 1

    # A run launched by hand (no sweep_spec.json): its operative config says which table it is in.
    _write_run(root, "ssgan", 4, {1000: [0.2, 0.5]})
    by_hand = os.path.join(root, "runs", sorted(os.listdir(os.path.join(root, "runs")))[-1])
    with open(os.path.join(by_hand, "operative_config.gin"), "w") as f:
        f.write("RotationTask.weight = 0.5\n")
    halves = _make_tables(f"--results={root}").stdout.split("**Configuration 2 of 2: RotationTask.weight = 1**")
    assert "| SS-GAN | 0.167 ± 0.058 (3) | 0.500 ± 0.000 (3) |" in halves[0]

    # A binding every recorded run agrees on: a run that does not record it is not set apart.
    agree = str(tmp_path / "agree")
    _write_run(agree, "uncond", 0, {1000: [0.3, 0.4]})
    _write_run(agree, "ssgan", 0, {1000: [0.5, 0.4]})
    with open(os.path.join(agree, "runs", "uncond-s0-0", "sweep_spec.json"), "w") as f:
        json.dump({"gin_files": ["gin/cifar10/uncond.gin", "gin/presets/mini.gin"],
                   "bindings": [["options.beta1", "0.0"]], "labels": {}, "axes": []}, f)
    together = _make_tables(f"--results={agree}")
    assert together.returncode == 0 and "Configuration" not in together.stdout
    assert "| SS-GAN vs Uncond-GAN | +0.200 | +0.000 |" in together.stdout


def test_the_papers_claim_is_tested_across_seeds(tmp_path):
    """SS-GAN vs Uncond-GAN per block: the difference of means, its bootstrap interval and the
    two p-values, as scipy computes them on the same per-seed values."""
    from scipy import stats

    root = str(tmp_path / "results")
    uncond, ssgan = [0.40, 0.42, 0.41], [0.45, 0.47, 0.48]
    for seed in range(3):
        _write_run(root, "uncond", seed, {1000: [uncond[seed]]})
        _write_run(root, "ssgan", seed, {1000: [ssgan[seed]]})
    result = _make_tables(f"--results={root}")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("| SS-GAN vs Uncond-GAN |"))
    welch = stats.ttest_ind(ssgan, uncond, equal_var=False).pvalue
    mannwhitney = stats.mannwhitneyu(ssgan, uncond, alternative="two-sided").pvalue
    # p as the tables print it: 2 significant digits below 0.01 (Welch, 0.0087), else 2 decimals (0.10)
    assert "+0.057 [" in row and f"; p {welch:.2g} / {mannwhitney:.2f} |" in row, row
    low, high = (float(x) for x in row.split("[")[1].split("]")[0].split(","))
    assert 0 < low < 0.057 < high  # every resample of these seeds favours SS-GAN


def test_probe_records_are_read_through_the_record_schema(tmp_path):
    """Probe records written before the schema (no version, no pooling) are migrated; a bad one
    is refused with its file and line."""
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import representation_table

    legacy = {"step": 1000, "block": 2, "train_top1": 0.9, "test_top1": 0.4, "feature_dim": 512,
              "pooled_grid": [4, 4], "probe": PROBE, "model": "ssgan", "seed": 0, "dataset": "cifar10"}
    path = tmp_path / "probes.jsonl"
    path.write_text(json.dumps(legacy) + "\n")
    [record] = representation_table.load_probes(str(path))
    assert (record["kind"], record["schema_version"]) == ("probe", results.SCHEMA_VERSION)
    assert record["pooling"] == "average-pooled to 4x4" and record["test_top1"] == 0.4
    path.write_text(json.dumps(legacy) + "\n" + json.dumps(dict(legacy, test_top1=1.5)) + "\n")
    with pytest.raises(results.RecordError, match="probes.jsonl line 2"):
        representation_table.load_probes(str(path))


def test_per_run_table_puts_each_checkpoints_score_beside_its_probes(tmp_path):
    """--table=representation_runs: a row per run and probed step, the run's score of that
    checkpoint (its scores.jsonl) beside the probes; never two scoring protocols in one column."""
    import result_records

    root = str(tmp_path / "results")
    _write_run(root, "ssgan", 1, {500: [0.21, 0.31], 1000: [0.41, 0.51]}, rotation=0.6)
    _write_run(root, "uncond", 0, {1000: [0.30, 0.40]})
    ssgan_run, uncond_run = (os.path.join(root, "runs", d) for d in sorted(os.listdir(os.path.join(root, "runs"))))
    result_records.write(tmp_path / "results" / "runs" / os.path.basename(ssgan_run) / results.SCORES_FILE,
                         [result_records.score("ssgan", 1, fid=44.444, step=1000, training_steps=1000)])
    runs = _make_tables(f"--results={root}", table="representation_runs")
    assert runs.returncode == 0, runs.stderr
    lines = runs.stdout.splitlines()
    assert lines[0] == ("| Model | Seed | Step | Block 0 | Block 1 | D rotation acc. | FID (CIFAR-10 classifier) |")
    assert lines[2:5] == ["| Uncond-GAN | 0 | 1000 | 0.300 | 0.400 | — | — |",  # Table 3's order; no scores
                          "| SS-GAN | 1 | 500 | 0.210 | 0.310 | 0.600 | — |",  # not scored at 500
                          "| SS-GAN | 1 | 1000 | 0.410 | 0.510 | 0.600 | 44.44 |"]
    assert "Not Inception" in runs.stdout

    result_records.write(tmp_path / "results" / "runs" / os.path.basename(uncond_run) / results.SCORES_FILE,
                         [result_records.score("uncond", 0, step=1000, training_steps=1000, num_samples=500)])
    mixed = _make_tables(f"--results={root}", table="representation_runs")
    assert mixed.returncode == 2 and "2 protocols" in mixed.stderr, mixed.stderr


def test_sweep_runs_without_probes_are_named_under_the_table(tmp_path):
    """A failed or unfinished sweep run has no probes.jsonl, so no cell: the table names it."""
    root = str(tmp_path / "sweep")
    os.makedirs(root)
    _write_run(root, "uncond", 0, {1000: [0.3, 0.4]})
    _write_run(root, "ssgan", 0, {1000: [0.5, 0.4]})
    for run_id, state in (("cifar10-ssgan-s1-aaaa", "failed"), ("cifar10-ssgan-s2-bbbb", "running"),
                          ("cifar10-uncond-s1-cccc", "done")):
        os.makedirs(os.path.join(root, "runs", run_id))
        with open(os.path.join(root, "runs", run_id, "sweep_status.json"), "w") as f:
            json.dump({"state": state, "attempts": 1}, f)
    for table in ("representation", "representation_runs"):
        result = _make_tables(f"--results={root}", table=table)
        assert result.returncode == 0, result.stderr
        note = next(line for line in result.stdout.splitlines() if line.startswith("In no cell"))
        assert "1 run(s) failed (see each run's log): cifar10-ssgan-s1-aaaa" in note
        assert "1 run(s) not finished (state running): cifar10-ssgan-s2-bbbb" in note
        assert "1 run(s) finished, not probed (run --schedule=probe): cifar10-uncond-s1-cccc" in note
    assert "In no cell" not in _make_tables(f"--results={root}/runs/uncond-s0-0/probes.jsonl").stdout
