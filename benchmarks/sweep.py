"""Resumable sweeps of training+evaluation runs, locally or on a Ray cluster.

python benchmarks/sweep.py --sweep=robustness --preset=mini --datasets=cifar10 --seeds=0,1,2 \
    --out=sweeps/rob --executor=local --workers=1 \
    --gin_param="dataset.image_folder='../shared/data/cifar10/cifar10-jpeg.tar.gz'"

Each run is `python -m compare_ssgan.main ... --schedule=eval_after_train` in its own model_dir
`<out>/runs/<run id>`; its state lives in `<run dir>/sweep_status.json`. Re-running the same
command skips finished runs, resumes interrupted ones from their checkpoints (the trainer does
that) and retries failed ones up to --retries times. After every run, all runs' scores are
gathered into `<out>/results.jsonl` (rewritten atomically, one record per run and evaluated
step) for make_tables.py. One sweep at a time may use an --out: a second invocation exits with
an error instead of training the same runs twice.

Extra seeds for one row of a grid, into the same --out (its results keep every run):
python benchmarks/sweep.py --sweep=robustness --preset=mini --seeds=3,4 --out=sweeps/rob \
    --only=penalty=SN,beta1=0.5,beta2=0.999,disc_iters=1 --gin_param=...
"""
import concurrent.futures
import glob
import json
import os
import sys
import threading
import time

from absl import app, flags

# This checkout's compare_ssgan before any installed one: the runs (`python -m compare_ssgan.main`
# in the checkout) and the sweep that gathers their records must be the same code, whichever
# checkout `pip install -e` points at (make_tables.py and export_sweep.py import this module first).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.dirname(_HERE)]
import grids  # noqa: E402
from compare_ssgan.errors import UserError  # noqa: E402

FLAGS = flags.FLAGS

STATUS_FILE = "sweep_status.json"
SPEC_FILE = "sweep_spec.json"  # the run's sweep block, so any later invocation can gather it
RESULTS_FILE = "results.jsonl"
LOCK_FILE = "sweep.lock"


class SweepLocked(Exception):
    pass


def lock_out(out):
    """Takes <out>/sweep.lock for this process's lifetime; returns the open lock file (keep it)."""
    from compare_ssgan import locks

    os.makedirs(out, exist_ok=True)
    try:
        f, unsupported = locks.acquire(os.path.join(out, LOCK_FILE))
    except locks.Held as holder:
        raise SweepLocked(f"another sweep ({holder}) is running on --out={out}; wait for it to finish "
                          "(or stop it) before re-running, or choose a different --out") from None
    if unsupported:  # e.g. NFS without a lock daemon: run, but say what is not guarded
        print(f"warning: cannot lock {f.name} ({unsupported.strerror}): this filesystem does not stop a "
              f"second sweep on this --out from training the same runs at once; start only one",
              file=sys.stderr)
    return f


def _atomic_write(path, text):
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def run_dir(out, spec):
    return os.path.join(out, "runs", spec.run_id)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def read_status(out, spec):
    return _read_json(os.path.join(run_dir(out, spec), STATUS_FILE)) or {"state": "pending", "attempts": 0}


def run_states(out):
    """{run id: (run directory, state)} of every run under <out>/runs with a readable status
    (a sweep's --out, or an export of it)."""
    runs = {}
    for run in sorted(glob.glob(os.path.join(out, "runs", "*"))):
        status = _read_json(os.path.join(run, STATUS_FILE))
        if status is not None:
            runs[os.path.basename(run)] = (run, status.get("state"))
    return runs


def latest_scores(run):
    """{evaluation: record} of a run directory's scores file: one record per step and protocol,
    a re-evaluation winning (what gather_results writes into results.jsonl)."""
    from compare_ssgan import results

    path = os.path.join(run, results.SCORES_FILE)
    return {results.score_key(r): r for r in results.read(path)} if os.path.exists(path) else {}


def sweep_block(spec):
    """What a gathered record says about its run's place in the sweep (results.py's `sweep`)."""
    return {"run_id": spec.run_id, "dataset": spec.dataset, "model": spec.model, "seed": spec.seed,
            "gin_files": list(spec.gin_files), "bindings": [list(b) for b in spec.bindings],
            "labels": dict(spec.labels), "axes": [name for name, _ in spec.labels]}


def select(specs, only):
    """The specs whose labels match every 'axis=value' of `only` (values compared as numbers
    when both parse as numbers, else as text); an unknown axis is an error naming the valid ones."""
    wanted = dict(grids.parse_bindings(only))
    known = {name for spec in specs for name, _ in spec.labels}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise ValueError(f"--only names unknown axes {unknown}; this sweep's axes: {sorted(known)}")

    def same(value, text):
        try:
            return float(value) == float(text)
        except (TypeError, ValueError):
            return str(value) == text

    chosen = [spec for spec in specs if all(same(dict(spec.labels).get(k), v) for k, v in wanted.items())]
    if not chosen:
        raise ValueError(f"--only={','.join(only)} matches none of the {len(specs)} runs")
    return chosen


def write_status(out, spec, **status):
    _atomic_write(os.path.join(run_dir(out, spec), STATUS_FILE), json.dumps(status, indent=1))


def command(spec, model_dir):
    args = [sys.executable, "-m", "compare_ssgan.main"]
    args += [f"--gin_file={f}" for f in spec.gin_files]
    args += [f"--gin_param={p}" for p in spec.gin_params()]
    return args + [f"--model_dir={model_dir}", "--schedule=eval_after_train"]


def execute(args, cwd, log_path, threads=0):
    """Runs one CLI invocation, appending its output to log_path; returns (exit code, seconds).
    threads > 0 caps the run's TensorFlow and BLAS thread pools. Self-contained (stdlib only) so
    Ray can ship it to any worker."""
    import os as os_
    import subprocess as sp
    import time as tm

    env = dict(os_.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if threads:  # the names compare_ssgan/environment.py records (not imported here: no TensorFlow)
        env.update({name: str(threads) for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                                                     "OMP_NUM_THREADS")})
    start = tm.time()
    with open(log_path, "a") as log:
        log.write(f"\n=== {tm.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(args)}\n")
        log.flush()
        code = sp.call(args, cwd=cwd, stdout=log, stderr=sp.STDOUT, env=env)
    return code, tm.time() - start


class LocalExecutor:
    """Runs on this machine, `workers` at a time. On a CPU machine, as many workers as cores with
    threads_per_run=1 runs the most steps per hour: on 2 cores, two 1-thread mini SS-GAN runs
    trained 1.93 steps/s together, one 2-thread run 1.73, in a clean benchmark; less gain in a
    real sweep (benchmarks/results/sweep_threads_cpu.md)."""

    def __init__(self, workers, threads_per_run=0):
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers))
        self.slots = max(1, workers)
        self.threads = threads_per_run

    def submit(self, args, cwd, log_path, on_start):
        def start_then_execute():
            on_start()
            return execute(args, cwd, log_path, self.threads)

        return self.pool.submit(start_then_execute)

    def shutdown(self):
        """Waits for the runs in progress; queued ones never start (the sweep stops on an error)."""
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Each run is a Ray task (shared filesystem and the same checkout path on every node)."""

    def __init__(self, address, gpus_per_run):
        import ray

        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        self.ray = ray
        # Defined here so Ray pickles it by value: workers need not import this file.
        remote_execute = ray.remote(num_gpus=gpus_per_run, max_retries=0)(
            lambda args, cwd, log_path: execute(args, cwd, log_path))
        self.remote = remote_execute
        self.slots = max(1, int(ray.cluster_resources().get("GPU" if gpus_per_run else "CPU", 1)
                                // (gpus_per_run or 1)))

    def submit(self, args, cwd, log_path, on_start):
        on_start()  # Ray queues and starts it on its own; its dashboard shows the true state
        return self.remote.remote(args, cwd, log_path).future()

    def shutdown(self):
        self.ray.shutdown()


def gather_results(out, specs):
    """Rewrites <out>/results.jsonl from every run's scores (one record per run and step), each
    with a `sweep` block naming the grid's axes (labels) and bindings (compare_ssgan.results).
    Runs of `specs` and every other run under <out>/runs with a spec file (launched by another
    invocation on this --out, e.g. extra seeds for one row) are gathered: no run is dropped."""
    from compare_ssgan import results

    blocks = {spec.run_id: sweep_block(spec) for spec in specs}
    runs_root = os.path.join(out, "runs")
    for run_id in sorted(os.listdir(runs_root)) if os.path.isdir(runs_root) else []:
        if run_id not in blocks:  # launched by another invocation on this --out (e.g. --only, --seeds)
            try:
                with open(os.path.join(runs_root, run_id, SPEC_FILE)) as f:
                    blocks[run_id] = json.load(f)
            except (OSError, json.JSONDecodeError):
                continue  # not a run of this sweep, or launched before spec files existed
    lines = []
    for run_id, block in blocks.items():
        latest = latest_scores(os.path.join(runs_root, run_id))
        scores = os.path.join(runs_root, run_id, results.SCORES_FILE)
        status = _read_json(os.path.join(runs_root, run_id, STATUS_FILE)) or {}
        for key in sorted(latest, key=str):
            record = dict(latest[key])
            record["sweep"] = {**block, "state": status.get("state")}
            results.validate(record, f"{scores} (gathered)")
            lines.append(json.dumps(record, sort_keys=True))
    _atomic_write(os.path.join(out, RESULTS_FILE), "".join(line + "\n" for line in lines))
    return len(lines)


class Progress:
    def __init__(self, total, slots):
        self.total, self.slots, self.start = total, slots, time.time()
        self.done = self.failed = self.running = self.queued = self.skipped = 0
        self.durations = []
        self.lock = threading.Lock()

    def line(self):
        remaining = self.total - self.done - self.failed
        eta = "?"
        if self.durations:
            mean = sum(self.durations) / len(self.durations)
            eta = f"{remaining * mean / self.slots / 60:.0f}m"
        return (f"[sweep] {self.done}/{self.total} done ({self.skipped} earlier), {self.running} running, "
                f"{self.queued} queued, {self.failed} failed | elapsed {(time.time() - self.start) / 60:.0f}m | ETA {eta}")


def _print(line):
    print(line, flush=True)


def run_sweep(specs, out, executor, retries, log=_print):
    """Runs every unfinished spec; returns the number of runs that failed all their attempts."""
    os.makedirs(out, exist_ok=True)
    progress = Progress(len(specs), executor.slots)
    pending = []
    for spec in specs:
        if read_status(out, spec).get("state") == "done":
            progress.done += 1
            progress.skipped += 1
        else:
            pending.append(spec)
    progress.queued = len(pending)  # every pending run counts as queued from the first line on
    log(progress.line())
    futures = {}

    def launch(spec, attempt_in_invocation, counted=False):
        model_dir = run_dir(out, spec)
        os.makedirs(model_dir, exist_ok=True)
        _atomic_write(os.path.join(model_dir, SPEC_FILE), json.dumps(sweep_block(spec), indent=1))
        # counted when a run starts; "started": whether it left the queue (an executor may fail first)
        attempts = {"count": read_status(out, spec).get("attempts", 0), "started": False}
        args = command(spec, os.path.abspath(model_dir))
        write_status(out, spec, state="queued", attempts=attempts["count"], command=args)

        def on_start():
            attempts["count"] += 1
            attempts["started"] = True
            write_status(out, spec, state="running", attempts=attempts["count"], command=args)
            with progress.lock:
                progress.queued -= 1
                progress.running += 1
            log(progress.line())

        if not counted:
            with progress.lock:
                progress.queued += 1

        def on_end(_):  # in the thread that ran it, before its slot starts the next run: never
            with progress.lock:  # more "running" than slots
                if attempts["started"]:
                    progress.running -= 1
                else:  # the executor failed before the run started
                    progress.queued -= 1

        future = executor.submit(args, grids.REPO, os.path.join(model_dir, "log.txt"), on_start)
        future.add_done_callback(on_end)
        futures[future] = (spec, attempt_in_invocation, attempts, args)

    for spec in pending:
        launch(spec, 1, counted=True)
    while futures:
        finished, _ = concurrent.futures.wait(list(futures), return_when=concurrent.futures.FIRST_COMPLETED)
        for future in finished:
            spec, tries, attempts, args = futures.pop(future)
            try:
                code, seconds = future.result()
            except Exception as e:  # an executor failure counts as a failed attempt
                code, seconds = f"{type(e).__name__}: {e}", 0.0
            ok = code == 0
            write_status(out, spec, state="done" if ok else "failed", attempts=attempts["count"],
                         returncode=code, seconds=round(seconds, 1), command=args)
            if ok:
                progress.done += 1
                progress.durations.append(seconds)
            elif tries <= retries:
                log(f"[sweep] {spec.run_id} failed (exit {code}); retrying "
                    f"(see {os.path.join(run_dir(out, spec), 'log.txt')})")
                launch(spec, tries + 1)
            else:
                progress.failed += 1
                log(f"[sweep] {spec.run_id} failed (exit {code}) after {tries} attempt(s); "
                    f"log: {os.path.join(run_dir(out, spec), 'log.txt')}")
            gather_results(out, specs)
            log(progress.line())
    gather_results(out, specs)
    return progress.failed


def main(argv):
    del argv
    if not FLAGS.out:
        raise app.UsageError("--out is required: the sweep directory")
    try:
        specs = grids.build(FLAGS.sweep, FLAGS.datasets, [int(s) for s in FLAGS.seeds], FLAGS.preset,
                            grids.parse_bindings(FLAGS.gin_param))
        if FLAGS.only:
            specs = select(specs, FLAGS.only)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if FLAGS.dry_run:
        for spec in specs:
            print(f"{spec.run_id}  {spec.describe()}")
        print(f"{len(specs)} runs")
        return
    try:
        lock = lock_out(FLAGS.out)  # noqa: F841 (held until exit)
    except SweepLocked as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if FLAGS.threads_per_run < 0:
        raise app.UsageError("--threads_per_run must be >= 0 (0: TensorFlow's default, all cores)")
    executor = (LocalExecutor(FLAGS.workers, FLAGS.threads_per_run) if FLAGS.executor == "local"
                else RayExecutor(FLAGS.ray_address, FLAGS.gpus_per_run))
    try:
        failed = run_sweep(specs, FLAGS.out, executor, FLAGS.retries)
    except UserError as e:  # e.g. a malformed scores.jsonl line (results.RecordError)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # said now: the traceback comes only after the runs in progress end
        print(f"[sweep] stopped: {type(e).__name__}: {e}. Queued runs will not start; the traceback "
              f"follows once the executor has shut down (locally: when the runs in progress end). "
              f"Re-running the same command resumes.", file=sys.stderr, flush=True)
        raise
    finally:
        executor.shutdown()
    print(f"[sweep] results: {os.path.join(FLAGS.out, RESULTS_FILE)}")
    sys.exit(1 if failed else 0)


def define_flags():
    """Defined only when run as a script, so tests can import this module beside main's flags."""
    flags.DEFINE_string("sweep", "robustness", "robustness | sample_quality | path to a grid JSON file.")
    flags.DEFINE_enum("preset", "mini", list(grids.PRESETS), "Scale of every run.")
    flags.DEFINE_list("datasets", ["cifar10"], "Datasets (folders under gin/).")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
    flags.DEFINE_string("out", None, "Sweep directory (run dirs, results.jsonl).")
    flags.DEFINE_enum("executor", "local", ["local", "ray"], "Where runs execute.")
    flags.DEFINE_integer("workers", 1, "Concurrent runs (local executor).")
    flags.DEFINE_integer("threads_per_run", 0, "TensorFlow/BLAS threads of each run (local executor; 0: "
                         "all cores). On a CPU machine, --workers=<cores> --threads_per_run=1 is fastest.")
    flags.DEFINE_string("ray_address", None, "Ray cluster address (ray executor); None starts a local Ray.")
    flags.DEFINE_float("gpus_per_run", 0.0, "GPUs each Ray task requests.")
    flags.DEFINE_integer("retries", 1, "Extra attempts for a failed run, per invocation.")
    flags.DEFINE_multi_string("gin_param", [], "Binding applied to every run, e.g. the data location.")
    flags.DEFINE_list("only", [], "Only the runs whose axes match, e.g. "
                      "--only=penalty=SN,beta1=0.5,beta2=0.999,disc_iters=1 (with --seeds=3,4: extra seeds "
                      "for one row; the --out's results gather every run it holds).")
    flags.DEFINE_bool("dry_run", False, "Print the runs (id and bindings) and exit.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
