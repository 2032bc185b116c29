"""Copies a sweep's outcome into a directory small enough to commit under benchmarks/results/.

python benchmarks/export_sweep.py --sweep_dir=sweeps/rob --to=benchmarks/results/robustness_mini

Per finished (or finally failed) run it keeps what a reader needs to audit the run and what a
new checkout needs to resume the sweep without redoing it: sweep_status.json, scores.jsonl,
operative_config.gin and the last sample grid. Checkpoints, logs and summaries stay behind.
Runs still queued or running are left out, so a sweep seeded from the export
(`cp -r <to>/runs <sweep_dir>/`) runs them again. results.jsonl is filtered to the kept runs.
"""
import glob
import json
import os
import shutil
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep  # noqa: E402

KEPT_FILES = (sweep.STATUS_FILE, "scores.jsonl", "operative_config.gin")
KEPT_STATES = ("done", "failed")


def export(sweep_dir, to):
    """Returns the ids of the runs exported."""
    kept = []
    for run in sorted(glob.glob(os.path.join(sweep_dir, "runs", "*"))):
        try:
            with open(os.path.join(run, sweep.STATUS_FILE)) as f:
                state = json.load(f).get("state")
        except (OSError, json.JSONDecodeError):
            continue
        if state not in KEPT_STATES:
            continue
        run_id = os.path.basename(run)
        dest = os.path.join(to, "runs", run_id)
        os.makedirs(dest, exist_ok=True)
        for name in KEPT_FILES:
            if os.path.exists(os.path.join(run, name)):
                shutil.copy2(os.path.join(run, name), dest)
        sample_grids = sorted(glob.glob(os.path.join(run, "samples", "step_*.png")))
        if sample_grids:
            shutil.copy2(sample_grids[-1], dest)
        kept.append(run_id)
    with open(os.path.join(sweep_dir, sweep.RESULTS_FILE)) as f:
        lines = [line for line in f if line.strip() and json.loads(line)["sweep"]["run_id"] in kept]
    sweep._atomic_write(os.path.join(to, sweep.RESULTS_FILE), "".join(lines))
    return kept


def main(argv):
    del argv
    if not os.path.exists(os.path.join(flags.FLAGS.sweep_dir, sweep.RESULTS_FILE)):
        print(f"error: no {sweep.RESULTS_FILE} in {flags.FLAGS.sweep_dir}: is it a sweep's --out?",
              file=sys.stderr)
        sys.exit(2)
    kept = export(flags.FLAGS.sweep_dir, flags.FLAGS.to)
    print(f"exported {len(kept)} finished run(s) to {flags.FLAGS.to}")


if __name__ == "__main__":
    flags.DEFINE_string("sweep_dir", None, "The sweep's --out directory.", required=True)
    flags.DEFINE_string("to", None, "Directory to commit (created if missing).", required=True)
    app.run(main)
