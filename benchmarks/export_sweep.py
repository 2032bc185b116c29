"""Copies a sweep's outcome into a directory small enough to commit under benchmarks/results/.

python benchmarks/export_sweep.py --sweep_dir=sweeps/rob --to=benchmarks/results/robustness_mini

Per finished (or finally failed) run it keeps what a reader needs to audit the run and what a
new checkout needs to resume the sweep without redoing it: sweep_status.json, sweep_spec.json,
scores.jsonl, probes.jsonl (linear probes, if any), operative_config.gin and the last sample
grid. Checkpoints, logs, summaries and probe feature caches stay behind.
<to>/runs mirrors the sweep: runs still queued or running (or retried since an earlier export)
are removed from it, so a sweep seeded from the export (`cp -r <to>/runs <sweep_dir>/`) runs
them again. results.jsonl is filtered to the kept runs. Other files in <to> (README, tables,
plots) are left alone. Records are read through compare_ssgan.results, so the exported
results.jsonl is in the current schema version (older records are migrated).
"""
import glob
import json
import os
import shutil
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep  # noqa: E402
from compare_ssgan import config_contract, results  # noqa: E402

SCORES_FILE = results.SCORES_FILE
KEPT_FILES = (sweep.STATUS_FILE, sweep.SPEC_FILE, SCORES_FILE, results.PROBES_FILE, config_contract.CONFIG_FILE)
KEPT_STATES = ("done", "failed")


class StaleResults(Exception):
    pass


class SameDirectory(Exception):
    """--to is the sweep itself or a directory holding it: exporting would delete its runs."""


def _finished_runs(sweep_dir):
    return {run_id: item for run_id, item in sweep.run_states(sweep_dir).items() if item[1] in KEPT_STATES}


def _check_gathered(runs, records):
    """results.jsonl is gathered after a run's status is written: a live sweep can be between
    the two. Exporting then would ship a finished run whose results look unfinished, or miss a
    re-evaluation of a step (the gathered record must be the run's latest of each evaluation)."""
    for run_id, (run, state) in runs.items():
        mine = [r for r in records if r["sweep"]["run_id"] == run_id]
        gathered = {results.score_key(r): {k: v for k, v in r.items() if k != "sweep"} for r in mine}
        latest = sweep.latest_scores(run)
        if gathered != latest or any(r["sweep"].get("state") != state for r in mine):
            raise StaleResults(f"{sweep.RESULTS_FILE} is behind run {run_id} ({state}): its scores are not "
                               f"gathered yet. Wait for the running sweep, or re-run the sweep command that "
                               f"covers this run (it gathers, and skips finished runs), then export again")


def export(sweep_dir, to):
    """Returns the ids of the runs exported."""
    source, dest = os.path.realpath(sweep_dir), os.path.realpath(to)
    if os.path.commonpath([source, dest]) == dest:
        raise SameDirectory(f"--to={to} is or holds --sweep_dir={sweep_dir}: the export replaces <to>/runs, which "
                            f"would delete the sweep's own runs; export to a directory outside the sweep")
    runs = _finished_runs(sweep_dir)
    records = [r for r in results.read(os.path.join(sweep_dir, sweep.RESULTS_FILE))
               if r["sweep"]["run_id"] in runs]
    _check_gathered(runs, records)
    for old in glob.glob(os.path.join(to, "runs", "*")):
        if os.path.basename(old) not in runs:
            shutil.rmtree(old)
    for run_id, (run, _) in runs.items():
        dest = os.path.join(to, "runs", run_id)
        shutil.rmtree(dest, ignore_errors=True)  # no stale sample grid from an earlier export
        os.makedirs(dest)
        for name in KEPT_FILES:
            if os.path.exists(os.path.join(run, name)):
                shutil.copy2(os.path.join(run, name), dest)
        # A run seeded from an earlier export has its grid beside its files, not under samples/.
        sample_grids = (sorted(glob.glob(os.path.join(run, "samples", "step_*.png")))
                        or sorted(glob.glob(os.path.join(run, "step_*.png"))))
        if sample_grids:
            shutil.copy2(sample_grids[-1], dest)
    sweep._atomic_write(os.path.join(to, sweep.RESULTS_FILE),
                        "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return list(runs)


def main(argv):
    del argv
    sweep_dir, to = flags.FLAGS.sweep_dir, flags.FLAGS.to
    if not os.path.exists(os.path.join(sweep_dir, sweep.RESULTS_FILE)):
        print(f"error: no {sweep.RESULTS_FILE} in {sweep_dir}: is it a sweep's --out?", file=sys.stderr)
        sys.exit(2)
    try:
        kept = export(sweep_dir, to)
    except (StaleResults, SameDirectory, results.RecordError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"exported {len(kept)} finished run(s) to {to}")


if __name__ == "__main__":
    flags.DEFINE_string("sweep_dir", None, "The sweep's --out directory.", required=True)
    flags.DEFINE_string("to", None, "Directory to commit (created if missing).", required=True)
    app.run(main)
