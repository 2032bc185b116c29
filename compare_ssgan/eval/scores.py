"""<model_dir>/scores.jsonl: where a run's scores are kept, and when a checkpoint counts as scored.

One "score" record (compare_ssgan.results) per line (compare_ssgan.jsonl: an append never
merges with a torn last line). Each line is appended with a single os.write() on a file opened
with O_APPEND (atomic with respect to other appenders on a local POSIX filesystem), under an
exclusive flock that also covers the "already scored?" check, so two evaluators of one run
never write a step twice. A checkpoint counts as already scored when a line has the same step,
feature network (name and weights), number of samples, number of fake sets, real split and
eval seed (`results.score_key`); changing any of these (e.g. adding an Inception evaluation of a run
scored offline) appends new lines. JSON has no NaN: undefined values are written as null.
"""
import math
import os

import numpy as np
from absl import logging

from compare_ssgan import disk, jsonl, results

SCORES_FILE = results.SCORES_FILE


def json_safe(value):
    """NaN/inf -> None (JSON has no NaN), numpy scalars -> Python, recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def read_scores(model_dir):
    """The records of <model_dir>/scores.jsonl (an unreadable line is skipped with a warning
    naming its line number)."""
    path = os.path.join(model_dir, SCORES_FILE)
    return jsonl.read(path) if os.path.exists(path) else []


def append_score(model_dir, record):
    """Appends `record` as one line unless an equal-key record exists; returns True if written."""
    with disk.no_space_is_a_user_error(f"a score (step {record.get('step')})", model_dir):
        written = jsonl.append_unique(os.path.join(model_dir, SCORES_FILE), json_safe(record), results.score_key)
    if not written:
        logging.info("step %s is already in %s; not writing it again.", record.get("step"), SCORES_FILE)
    return written


def metric_labels(label):
    """{"fid", "kid", "inception_score"} -> their names, from the network's FID label."""
    return {"fid": label, "kid": label.replace("FID", "KID", 1), "inception_score": label.replace("FID", "IS", 1)}


def summary_line(record):
    """One human-readable line of a record's metrics, each named by its feature network."""
    labels = record["metric_labels"]

    def fmt(name, digits):
        mean, std = record[name], record[f"{name}_std"]
        if mean is None:
            return f"{labels[name]} null"
        return f"{labels[name]} {mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")

    return f"{record['status']} | {fmt('fid', 3)} | {fmt('kid', 5)} | {fmt('inception_score', 3)}"
