"""benchmarks/training_metrics.py reads the scalars a run logged and averages the last ones."""
import json
import os
import sys
import time

import tensorflow as tf

from run_helpers import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import training_metrics  # noqa: E402


def test_last_logged_values_are_averaged_per_metric(tmp_path):
    run = tmp_path / "run"
    for start, values in ((0, [0.1, 0.2, 0.3]), (200, [0.9, 0.7])):  # a resumed run rewrites step 200
        writer = tf.summary.create_file_writer(str(run / "train"))
        with writer.as_default():
            for i, value in enumerate(values):
                tf.summary.scalar("lt_accuracy", value, step=start + 100 * i)
        writer.close()
        time.sleep(1.1)  # event files are named by their creation second: the resumed one sorts last
    points = training_metrics.read_scalars(str(run))["lt_accuracy"]
    assert [step for step, _ in points] == [0, 100, 200, 300]
    assert abs(points[2][1] - 0.9) < 1e-6  # the resumed run's value of step 200
    [(metric, mean, count, step, last)] = training_metrics.summarize(str(run), ["lt_accuracy", "absent"], 2)
    assert (metric, count, step) == ("lt_accuracy", 2, 300)
    assert abs(last - 0.7) < 1e-6
    assert abs(mean - (0.9 + 0.7) / 2) < 1e-6


def test_a_sweeps_runs_are_named_by_their_grid_labels(tmp_path):
    spec = {"model": "ssgan", "seed": 1, "labels": {"penalty": "SN", "lambda": None, "beta1": 0.5}}
    (tmp_path / "sweep_spec.json").write_text(json.dumps(spec))
    assert training_metrics.run_name(str(tmp_path)) == "ssgan (seed 1, penalty=SN, beta1=0.5)"
    assert training_metrics.run_name(str(tmp_path / "plain")) == "plain"


def test_a_flat_discriminator_is_counted_from_its_gradient_penalty(tmp_path):
    """Flat: the penalty at its maximum 0.9801 (no input gradient). Only runs whose penalty is a
    gradient norm are measured."""
    for name, fn, penalty in (("gp", "@wgan_gp", [0.50, 0.9801, 0.60, 0.9801, 0.97, 0.9801]),
                              ("sn", "@no_penalty", [0.0, 0.0, 0.0])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "operative_config.gin").write_text(f"penalty.fn = {fn}\npenalty.weight = 1.0\n")
        writer = tf.summary.create_file_writer(str(tmp_path / name / "train"))
        with writer.as_default():
            for step, value in enumerate(penalty):
                tf.summary.scalar("penalty", value, step=100 * step)
        writer.close()
    assert training_metrics.flat_discriminator(str(tmp_path / "gp")) == (3, 6, 100, True)
    assert training_metrics.flat_discriminator(str(tmp_path / "sn")) is None
    assert training_metrics.flat_discriminator(str(tmp_path / "none")) is None
