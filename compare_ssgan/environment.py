"""Where a run trained: <model_dir>/training_sessions.jsonl, one line per training session.

A GAN's trajectory depends on more than its configuration: the same run trained with one CPU
thread or two (a different floating-point summation order) passes through different FIDs
(benchmarks/results/robustness_mini_v2/README.md, "Thread settings"). So every training session
(a resume starts a new one) records the machine (its CPU model: oneDNN picks kernels by
instruction set), the devices, the thread settings and the oneDNN switch, and the
score records carry the distinct environments a run trained in (`training_environments`), for
the tables to show beside the code version. Not a configuration axis: runs of one configuration
on different machines are still seeds of the same row.
"""
import datetime
import os
import platform
import socket

import tensorflow as tf

from compare_ssgan import disk, jsonl, provenance

SESSIONS_FILE = "training_sessions.jsonl"
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
# Kernel choices that change the numbers on one machine: with oneDNN (TensorFlow's default on x86)
# the kernels depend on the CPU's instruction set and the batch size (tests/test_distributed.py).
KERNEL_VARIABLES = ("TF_ENABLE_ONEDNN_OPTS",)


def _threads(configured, variable):
    """The thread count a TensorFlow pool uses: set in Python, else by its environment
    variable, else None (TensorFlow's default: one per core)."""
    if configured:
        return configured
    value = os.environ.get(variable, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def cpu_model():
    """'AMD EPYC 7B13' (Linux: /proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(strategy):
    """The parts of the machine that can change a run's numbers (and its speed)."""
    devices = tf.config.list_logical_devices()
    accelerators = [d for d in devices if d.device_type in ("GPU", "TPU")]
    names = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            names.append(tf.config.experimental.get_device_details(device).get("device_name", "GPU"))
        except (ValueError, RuntimeError):
            names.append("GPU")
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "accelerators": sorted({d.device_type for d in accelerators}),
        "accelerator_names": sorted(set(names)),
        "replicas": strategy.num_replicas_in_sync,
        "strategy": type(strategy).__name__,
        "intra_op_threads": _threads(tf.config.threading.get_intra_op_parallelism_threads(),
                                     "TF_NUM_INTRAOP_THREADS"),
        "inter_op_threads": _threads(tf.config.threading.get_inter_op_parallelism_threads(),
                                     "TF_NUM_INTEROP_THREADS"),
        "thread_variables": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
        "kernel_variables": {k: os.environ[k] for k in KERNEL_VARIABLES if k in os.environ},
    }


def record_session(model_dir, strategy, start_step, target_step, precision, jit_compile):
    """Appends this training session to <model_dir>/training_sessions.jsonl."""
    record = {"start_step": int(start_step), "target_step": int(target_step),
              "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "precision": precision, "jit_compile": bool(jit_compile), **describe(strategy),
              "code_version": provenance.CODE_VERSION}
    with disk.no_space_is_a_user_error(SESSIONS_FILE, model_dir):
        jsonl.append_to(os.path.join(model_dir, SESSIONS_FILE), record)
    return record


def summary(session):
    """'CPU x2 cores (AMD EPYC 7B13), 1 thread, tf 2.21.0' / '1 GPU (NVIDIA H100 80GB HBM3),
    mixed_bfloat16, XLA, tf 2.21.0': the CPU model too, as its instruction set picks oneDNN's kernels."""
    if session.get("accelerators"):
        kinds = "+".join(session["accelerators"])
        names = f" ({', '.join(session['accelerator_names'])})" if session.get("accelerator_names") else ""
        where = f"{session['replicas']} {kinds}{names}"
    else:
        threads = session.get("intra_op_threads")
        model = f" ({session['cpu_model']})" if session.get("cpu_model") else ""
        where = (f"CPU x{session.get('cpu_count')} cores{model}, "
                 + ("default threads" if threads is None else f"{threads} thread{'s' * (threads != 1)}"))
        if session.get("replicas", 1) > 1:
            where += f", {session['replicas']} replicas"
    extras = [session["precision"]] if session.get("precision") not in (None, "float32") else []
    extras += ["XLA"] if session.get("jit_compile") else []
    extras += ["oneDNN off"] if (session.get("kernel_variables") or {}).get("TF_ENABLE_ONEDNN_OPTS") == "0" else []
    return ", ".join([where, *extras, f"tf {session.get('tensorflow')}"])


def training_environments(model_dir):
    """The distinct summaries of a run's training sessions, first-used first ([] before any)."""
    path = os.path.join(model_dir, SESSIONS_FILE)
    found = []
    for session in jsonl.read(path) if os.path.exists(path) else []:
        text = summary(session)
        if text not in found:
            found.append(text)
    return found
