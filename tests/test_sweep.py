"""Sweeps: the paper's grid, resumable local and Ray execution, tables from the results."""
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from compare_ssgan import results
from result_records import in_sweep, score, write
from run_helpers import IMAGE_FOLDER, REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import export_sweep  # noqa: E402
import grids  # noqa: E402
import make_tables  # noqa: E402
import sweep  # noqa: E402


def test_robustness_grid_is_the_papers():
    specs = grids.build("robustness", ["cifar10"], [0, 1, 2], "mini")
    assert len(specs) == 9 * 2 * 3
    settings = {tuple(v for _, v in s.labels) for s in specs}
    assert settings == {(p, lam, b1, b2, d)
                        for p, lam in (("SN", None), ("WGAN-GP (1)", 1.0), ("WGAN-GP (10)", 10.0))
                        for b1, b2, d in ((0.0, 0.9, 1), (0.0, 0.9, 2), (0.5, 0.999, 1))}
    assert {s.model for s in specs} == {"uncond", "ssgan"} and {s.seed for s in specs} == {0, 1, 2}
    assert len({s.run_id for s in specs}) == len(specs)
    # Ids are stable and ignore where the data is read from.
    moved = grids.build("robustness", ["cifar10"], [0, 1, 2], "mini", (("dataset.image_folder", "'x'"),))
    assert [s.run_id for s in specs] == [s.run_id for s in moved]
    gp = next(s for s in specs if dict(s.labels)["penalty"] == "WGAN-GP (10)")
    assert ("penalty.weight", "10.0") in gp.bindings and ("architecture.d_spectral_norm", "False") in gp.bindings


def test_the_sweep_imports_its_own_checkouts_code(tmp_path):
    """Its runs are `python -m compare_ssgan.main` in this checkout: the sweep, which gathers their
    records, imports the same compare_ssgan even where another one (e.g. the checkout that
    `pip install -e` points at) comes first on the path."""
    other = tmp_path / "other" / "compare_ssgan"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("raise ImportError('the other checkout was imported')\n")
    result = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "sweep.py"), "--dry_run",
                             f"--out={tmp_path / 'sweep'}"], cwd=tmp_path, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(tmp_path / "other")))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == f"{len(grids.build('robustness', ['cifar10'], [0, 1, 2], 'mini'))} runs"


def test_dry_run_prints_one_line_per_run():
    out = subprocess.run([sys.executable, "benchmarks/sweep.py", "--sweep=robustness", "--preset=mini",
                          "--seeds=0,1", "--out=unused", "--dry_run"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out[-1] == "36 runs" and len(out) == 37
    assert all(line.startswith("cifar10-") and "options.seed=" in line for line in out[:-1])


def _grid_file(tmp_path, models):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({"models": models, "grid": {"options.beta2": [0.9]}}))
    return str(path)


def _sweep_args(grid, out, *extra):
    return [sys.executable, "benchmarks/sweep.py", f"--sweep={grid}", "--preset=smoke", "--seeds=0",
            f"--out={out}", f"--gin_param={IMAGE_FOLDER}", *extra]


def _final_steps(out):
    records = make_tables.load(out)
    return sorted((r["sweep"]["run_id"], r["step"]) for r in make_tables.final_records(records)), records


def test_killed_sweep_restarts_and_finishes_every_run_once(tmp_path):
    """Killed mid-run, restarted (on Ray where the [ray] extra is installed, as .ci/run does)."""
    grid, out = _grid_file(tmp_path, ["uncond", "ssgan"]), str(tmp_path / "sweep")
    proc = subprocess.Popen(_sweep_args(grid, out, "--workers=1"), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    specs = grids.build(grid, ["cifar10"], [0], "smoke")
    try:
        deadline = time.time() + 300
        while time.time() < deadline:  # kill once one run finished and the next is under way
            states = [sweep.read_status(out, s)["state"] for s in specs]
            if states.count("done") >= 1 and "running" in states:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"sweep made no progress: {states}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    states_at_kill = {s.run_id: sweep.read_status(out, s)["state"] for s in specs}
    executor = "--executor=ray" if importlib.util.find_spec("ray") else "--workers=1"
    result = subprocess.run(_sweep_args(grid, out, executor), cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[sweep] 1/2 done (1 earlier), 1 running, 0 queued" in result.stdout  # the killed run, redone
    assert "[sweep] 2/2 done (1 earlier), 0 running, 0 queued, 0 failed" in result.stdout
    finals, records = _final_steps(out)
    assert finals == sorted((s.run_id, 4) for s in specs)  # every run, once, at its last step
    keys = [(r["sweep"]["run_id"], r["step"]) for r in records]
    assert len(keys) == len(set(keys))
    for spec in specs:  # the finished run was not redone; attempts count runs that started
        status = sweep.read_status(out, spec)
        assert status["state"] == "done"
        assert status["attempts"] == (2 if states_at_kill[spec.run_id] == "running" else 1), states_at_kill
    table = subprocess.run([sys.executable, "benchmarks/make_tables.py", f"--results={out}",
                            "--table=robustness", "--format=markdown", f"--plot_dir={out}/plots"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "Uncond-GAN" in table and "SS-GAN" in table and "CIFAR-10 classifier" in table
    assert os.path.exists(os.path.join(out, "plots", "fid_vs_step_cifar10.png"))
    latex = make_tables.robustness_table(records, "latex")
    assert "\\begin{tabular}" in latex and "SS-GAN" in latex

    # Exported for committing, then used to seed a new checkout's sweep: nothing is redone.
    exported = str(tmp_path / "exported")
    subprocess.run([sys.executable, "benchmarks/export_sweep.py", f"--sweep_dir={out}", f"--to={exported}"],
                   cwd=REPO, check=True, capture_output=True)
    assert _final_steps(exported)[0] == finals
    assert sorted(os.listdir(os.path.join(exported, "runs", specs[0].run_id))) == [
        "operative_config.gin", "scores.jsonl", "step_000004.png", "sweep_spec.json", "sweep_status.json"]
    seeded = str(tmp_path / "seeded")
    os.makedirs(seeded)
    subprocess.run(["cp", "-r", os.path.join(exported, "runs"), seeded], check=True)
    again = subprocess.run(_sweep_args(grid, seeded), cwd=REPO, capture_output=True, text=True, check=True)
    assert "2/2 done (2 earlier), 0 running" in again.stdout
    assert _final_steps(seeded)[0] == finals
    # Exported again from the seeded sweep (its runs have no samples/): the sample grid stays.
    subprocess.run([sys.executable, "benchmarks/export_sweep.py", f"--sweep_dir={seeded}", f"--to={exported}"],
                   cwd=REPO, check=True, capture_output=True)
    assert "step_000004.png" in os.listdir(os.path.join(exported, "runs", specs[0].run_id))


class _InstantExecutor:
    """One slot; every run "starts" and exits 0 at once (the sweep's bookkeeping, no training),
    except that the executor itself fails, before starting it, the run whose model_dir has `broken`."""
    slots = 1

    def __init__(self, broken):
        import concurrent.futures
        self.pool, self.broken = concurrent.futures.ThreadPoolExecutor(1), broken

    def submit(self, args, cwd, log_path, on_start):
        def run():
            if any(self.broken in arg for arg in args):  # its --model_dir names the run
                raise ConnectionError("worker lost")
            on_start()
            return 0, 0.0
        return self.pool.submit(run)


def test_progress_counts_pending_runs_as_queued_until_they_start_or_fail(tmp_path):
    specs = grids.build(_grid_file(tmp_path, ["uncond", "ssgan", "rot_only"]), ["cifar10"], [0], "smoke")
    out, lines = str(tmp_path / "sweep"), []
    os.makedirs(sweep.run_dir(out, specs[0]))
    sweep.write_status(out, specs[0], state="done", attempts=1)  # finished by an earlier invocation
    assert sweep.run_sweep(specs, out, _InstantExecutor(broken=specs[1].run_id), retries=0, log=lines.append) == 1
    assert lines[0].startswith("[sweep] 1/3 done (1 earlier), 0 running, 2 queued, 0 failed")
    # The executor lost run 2 before it started: it leaves the queue as failed, never "running".
    assert all(" -1 " not in line for line in lines), lines
    # A run's slot starts the next run as soon as it ends: never more running than slots.
    assert lines[-1].startswith("[sweep] 2/3 done (1 earlier), 0 running, 0 queued, 1 failed"), lines


def test_progress_never_counts_more_runs_running_than_slots(tmp_path):
    # A pool's freed slot starts the next run at once, in its own thread: the run that ended must
    # leave "running" before the next one enters it (a 2-worker sweep once printed "3 running").
    specs = grids.build(_grid_file(tmp_path, ["uncond", "ssgan", "rot_only"]), ["cifar10"], [0, 1], "smoke")
    lines = []
    assert sweep.run_sweep(specs, str(tmp_path / "sweep"), _InstantExecutor(broken="no run"), retries=0,
                           log=lines.append) == 0
    running = [int(re.search(r"(\d+) running", line).group(1)) for line in lines]
    assert len(running) == 1 + 2 * len(specs) and max(running) == 1, lines


def test_a_stopped_sweep_waits_for_its_runs_in_progress_and_starts_no_queued_one(tmp_path):
    executor, started = sweep.LocalExecutor(workers=1), []
    run = [sys.executable, "-c", "import time; time.sleep(1)"]
    futures = [executor.submit(run, str(tmp_path), str(tmp_path / f"log{i}.txt"), lambda i=i: started.append(i))
               for i in range(3)]
    while not started:
        time.sleep(0.01)
    executor.shutdown()  # what main() does when the sweep stops on an error
    assert started == [0] and futures[0].result()[0] == 0
    assert all(f.cancelled() for f in futures[1:])


def test_export_mirrors_finished_runs_and_refuses_ungathered_results(tmp_path):
    sweep_dir, to = tmp_path / "sweep", tmp_path / "to"

    def run(run_id, state, steps=(1, 2)):
        (sweep_dir / "runs" / run_id / "samples").mkdir(parents=True, exist_ok=True)
        (sweep_dir / "runs" / run_id / "checkpoints").mkdir(exist_ok=True)
        (sweep_dir / "runs" / run_id / sweep.STATUS_FILE).write_text(json.dumps({"state": state}))
        write(sweep_dir / "runs" / run_id / "scores.jsonl", [score(step=s) for s in steps])
        for step in steps:
            (sweep_dir / "runs" / run_id / "samples" / f"step_00000{step}.png").write_bytes(b"png")
        if state == "done":  # the linear probes of its checkpoints, exported beside its scores
            (sweep_dir / "runs" / run_id / results.PROBES_FILE).write_text("{}\n")
        return [in_sweep(score(step=s), run_id, state=state) for s in steps]

    def gathered(*runs):
        (sweep_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for rs in runs for r in rs))

    gathered(run("a", "done"), run("b", "running", steps=(1,)), run("c", "failed"))
    assert export_sweep.export(str(sweep_dir), str(to)) == ["a", "c"]
    assert sorted(os.listdir(to / "runs")) == ["a", "c"]
    assert sorted(os.listdir(to / "runs" / "a")) == [
        results.PROBES_FILE, "scores.jsonl", "step_000002.png", sweep.STATUS_FILE]
    exported = [json.loads(line)["sweep"]["run_id"] for line in (to / "results.jsonl").read_text().splitlines()]
    assert exported == ["a", "a", "c", "c"]

    # Later: b finished, c is being retried from scratch. The export mirrors that.
    gathered(run("a", "done"), run("b", "done", steps=(1, 2, 3)), run("c", "running", steps=()))
    assert export_sweep.export(str(sweep_dir), str(to)) == ["a", "b"]
    assert sorted(os.listdir(to / "runs")) == ["a", "b"]
    assert sorted(os.listdir(to / "runs" / "b")) == [
        results.PROBES_FILE, "scores.jsonl", "step_000003.png", sweep.STATUS_FILE]

    # A run marked done whose scores the sweep has not gathered yet: refused, nothing changed.
    run("b", "done", steps=(1, 2, 3, 4))
    with pytest.raises(export_sweep.StaleResults, match="behind run b"):
        export_sweep.export(str(sweep_dir), str(to))
    assert sorted(os.listdir(to / "runs" / "b")) == [
        results.PROBES_FILE, "scores.jsonl", "step_000003.png", sweep.STATUS_FILE]

    # A step re-scored after the gathering (same step, same protocol, a new value): refused too.
    gathered(run("a", "done"), run("b", "done", steps=(1, 2, 3, 4)))
    assert "b" in export_sweep.export(str(sweep_dir), str(to))
    rescored = [score(step=s) for s in (1, 2, 3)] + [score(step=4, fid=30.0)]
    write(sweep_dir / "runs" / "b" / "scores.jsonl", rescored)
    with pytest.raises(export_sweep.StaleResults, match="behind run b"):
        export_sweep.export(str(sweep_dir), str(to))

    # Exported into the sweep itself (or a directory holding it): refused before anything is deleted.
    for target in (sweep_dir, sweep_dir / ".." / sweep_dir.name, sweep_dir.parent):
        with pytest.raises(export_sweep.SameDirectory, match="is or holds --sweep_dir"):
            export_sweep.export(str(sweep_dir), str(target))
    assert sorted(os.listdir(sweep_dir / "runs")) == ["a", "b", "c"]
    assert os.listdir(sweep_dir / "runs" / "a" / "checkpoints") == []


def test_second_sweep_on_the_same_out_is_refused(tmp_path):
    grid, out = _grid_file(tmp_path, ["uncond"]), str(tmp_path / "sweep")
    held = sweep.lock_out(out)  # as a running sweep holds it
    try:
        result = subprocess.run(_sweep_args(grid, out), cwd=REPO, capture_output=True, text=True)
    finally:
        held.close()
    assert result.returncode == 2
    assert f"another sweep (pid {os.getpid()}" in result.stderr and "--out" in result.stderr
    assert not os.path.exists(os.path.join(out, "runs"))  # it trained nothing
    sweep.lock_out(out).close()  # released with its holder: the next sweep may start


def _record(model, seed, fid, step=100, sn=True, penalty="no_penalty"):
    record = score(model, seed, fid, step=step, penalty=penalty, architecture_config={"d_spectral_norm": sn})
    return in_sweep(record, f"{model}-{seed}-{penalty}")


def test_robustness_table_values_marks_and_flags():
    records = [_record("uncond", 0, 110.0), _record("uncond", 1, 130.0), _record("ssgan", 0, 20.0),
               _record("ssgan", 1, 22.0), _record("ssgan", 1, 99.0, step=50),  # earlier step: ignored
               _record("uncond", 0, 50.0, sn=False, penalty="wgan_gp"),
               _record("ssgan", 0, None, sn=False, penalty="wgan_gp")]
    table = make_tables.robustness_table(records, "markdown")
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert "120.00 ± 14.14† (2 collapsed) | 110.00 | 2 | **21.00 ± 1.41** | 20.00 | 2 |" in rows["SN"]
    assert "| 50.00 | 50.00 | 1 | — (1 diverged) | — | 0 |" in rows["WGAN-GP"]
    assert "FID (CIFAR-10 classifier)" in table and "2000 generated samples" in table
    assert "Not Inception FID" in table
    csv = make_tables.robustness_table(records, "csv")
    assert csv.splitlines()[0].startswith("Penalty,λ,β1,β2,D iters,cifar10: Uncond-GAN,best,n,cifar10: SS-GAN")
    # Best of n per configuration: the SN and WGAN-GP runs are not pooled (they once were).
    best = make_tables.sample_quality_table(records, "markdown")
    assert "| True | SS-GAN | 20.00 (of 2; 21.00 ± 1.41) |" in best
    assert "| False | Uncond-GAN | 50.00 (of 1; 50.00) |" in best and "| False | SS-GAN | — [1 diverged] |" in best


def test_tables_leave_out_unfinished_runs_flag_failed_ones_and_refuse_mixed_protocols():
    def at(model, seed, fid, step, state):
        record = _record(model, seed, fid, step=step)
        record["training_steps"], record["sweep"]["state"] = 100, state
        return record

    records = [at("uncond", 0, 30.0, 100, "done"), at("uncond", 1, 10.0, 50, "running"),
               at("ssgan", 0, 20.0, 100, "done"), at("ssgan", 1, 12.0, 50, "failed")]
    table = make_tables.robustness_table(records, "markdown")
    row = next(line for line in table.splitlines() if line.startswith("| SN"))
    assert "| 30.00 |" in row  # the unfinished seed's early FID is not averaged in
    assert "20.00 (1 failed)" in row
    assert "1 run(s) not finished yet (no score at their last step) are left out." in table
    inception = dict(_record("ssgan", 2, 15.0), feature_network={"name": "inception"})
    with pytest.raises(ValueError, match="mix evaluation protocols"):
        make_tables.select(records + [inception])
    assert make_tables.select(records + [inception], feature_network="inception") == [inception]
    records[0]["code_version"] = {"package": "0.1.0", "git_commit": "94c07d1" + "0" * 33, "git_dirty": True}
    records[0]["training_environment"] = ["CPU x2 cores, 2 threads, tf 2.21.0", "1 GPU (NVIDIA H100), tf 2.21.0"]
    runs = make_tables.runs_table(records, "markdown").splitlines()
    assert runs[2:6] == [  # varying axes (none here), then model order, then seed; at the last scored step
        "| Uncond-GAN | 0 | 100/100 | 30.00 | 0.0300 | ok | 0.1.0@94c07d1-dirty | "
        "CPU x2 cores, 2 threads, tf 2.21.0; 1 GPU (NVIDIA H100), tf 2.21.0 |",  # resumed elsewhere
        "| Uncond-GAN | 1 | 50/100 | 10.00 | 0.0100 | unfinished | — | not recorded |",
        "| SS-GAN | 0 | 100/100 | 20.00 | 0.0200 | ok | — | not recorded |",
        "| SS-GAN | 1 | 50/100 | 12.00 | 0.0120 | failed | — | not recorded |"]


def test_only_selects_a_row_and_gathering_keeps_runs_of_other_invocations(tmp_path):
    """Extra seeds for one row (--only, --seeds=3,4) into the same --out: the results still hold
    the first invocation's runs, gathered through their spec files."""
    specs = grids.build("robustness", ["cifar10"], [0, 1, 2], "mini")
    row = {"penalty": "SN", "beta1": "0.5", "beta2": "0.999", "disc_iters": "1"}
    only = [f"{k}={v}" for k, v in row.items()]
    chosen = sweep.select(specs, only)
    assert len(chosen) == 2 * 3 and {s.model for s in chosen} == {"uncond", "ssgan"}
    assert all(dict(s.labels)["beta2"] == 0.999 and dict(s.labels)["penalty"] == "SN" for s in chosen)
    with pytest.raises(ValueError, match="unknown axes.*'beta1'"):
        sweep.select(specs, ["betta1=0.5"])
    with pytest.raises(ValueError, match="matches none"):
        sweep.select(specs, ["beta1=0.7"])

    out = str(tmp_path / "sweep")
    first, extra = chosen[0], sweep.select(grids.build("robustness", ["cifar10"], [3], "mini"), only)[0]
    for spec, fid in ((first, 30.0), (extra, 20.0)):  # as launch() leaves a finished run
        os.makedirs(sweep.run_dir(out, spec))
        sweep._atomic_write(os.path.join(sweep.run_dir(out, spec), sweep.SPEC_FILE),
                            json.dumps(sweep.sweep_block(spec)))
        sweep.write_status(out, spec, state="done")
        write(tmp_path / "sweep" / "runs" / spec.run_id / "scores.jsonl",
              [score(model=spec.model, seed=spec.seed, fid=fid)])
    assert sweep.gather_results(out, [extra]) == 2  # the later invocation knows only its own run
    gathered = {r["sweep"]["run_id"]: r for r in make_tables.load(out)}
    assert set(gathered) == {first.run_id, extra.run_id}
    assert gathered[first.run_id]["sweep"]["labels"] == dict(first.labels)
    assert gathered[extra.run_id]["sweep"]["seed"] == 3 and gathered[extra.run_id]["fid"] == 20.0


def test_threads_per_run_caps_each_runs_thread_pools(tmp_path):
    """--threads_per_run reaches the run's process as TensorFlow's and BLAS's thread settings;
    0 leaves them alone."""
    show = [sys.executable, "-c", "import os; print([os.environ.get(k) for k in "
            "('TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS', 'OMP_NUM_THREADS')])"]
    log = tmp_path / "log.txt"
    executor = sweep.LocalExecutor(workers=2, threads_per_run=1)
    try:
        code, _ = executor.submit(show, str(tmp_path), str(log), on_start=lambda: None).result()
    finally:
        executor.shutdown()
    assert code == 0 and log.read_text().splitlines()[-1] == "['1', '1', '1']"
    sweep.execute(show, str(tmp_path), str(log))  # threads=0: this process's own settings
    inherited = [os.environ.get(k) for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")]
    assert log.read_text().splitlines()[-1] == str(inherited)
