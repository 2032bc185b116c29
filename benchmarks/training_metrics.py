"""The training metrics a run logged (its TensorBoard events under <run>/train/), per run.

python benchmarks/training_metrics.py --runs=sweeps/lt/runs --metrics=lt_accuracy --last=8

For each run directory under --runs (or --runs itself): the mean of each metric over its last
--last logged values (one value per `options.log_every` steps, each the metric of one step's
batch, so single values are noisy) and the last value, as a Markdown table. Used to check that an
auxiliary task is learned at all: LT-GAN's `lt_accuracy` (chance 0.5), SS-GAN's
`rotation_accuracy_real` (chance 0.25).

python benchmarks/training_metrics.py --runs=sweeps/rob/runs --flat_discriminator

instead counts, per run with a gradient-norm penalty, the logs at which D was flat (no input
gradient, so the same output for every image and no gradient to G): how the robustness sweep's
unnormalised D died at the mini preset.
"""
import glob
import json
import os
import platform
import shlex
import sys

from absl import app, flags

from compare_ssgan import config_contract

FLAGS = flags.FLAGS


def read_scalars(run_dir):
    """{metric: [(step, value), ...]} from the run's train/ event files, in step order."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    series = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "train", "events.out.tfevents.*"))):
        for raw in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(raw.numpy())
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
                series.setdefault(value.tag, {})[int(event.step)] = number  # a resumed run rewrites a step
    return {tag: sorted(points.items()) for tag, points in series.items()}


def run_name(run_dir):
    """A sweep's run by its model, seed and the grid's labels (runs of several settings share a
    model and seed); any other run by its directory."""
    spec = os.path.join(run_dir, "sweep_spec.json")
    if os.path.exists(spec):
        with open(spec) as f:
            block = json.load(f)
        labels = "".join(f", {axis}={value}" for axis, value in block.get("labels", {}).items() if value is not None)
        return f"{block['model']} (seed {block['seed']}{labels})"
    return os.path.basename(os.path.normpath(run_dir))


def summarize(run_dir, metrics, last):
    """[(metric, mean of the last `last` values, their count, last step, last value)]."""
    series = read_scalars(run_dir)
    rows = []
    for metric in metrics:
        points = series.get(metric)
        if not points:
            continue
        tail = [v for _, v in points[-last:]]
        rows.append((metric, sum(tail) / len(tail), len(tail), points[-1][0], points[-1][1]))
    return rows


# A flat D: the gradient-norm penalty logs mean((sqrt(1e-4 + |grad|^2) - 1)^2) (compare_ssgan/gans/
# penalties.py), at most (0.01 - 1)^2 = 0.9801, reached when D's input gradient is 0 at every
# penalty point: D gives every image there one output and passes G no gradient. Without such a
# penalty nothing logged measures D's input gradient.
GRADIENT_NORM_PENALTIES = ("@wgan_gp", "@dragan")
FLAT_PENALTY_MIN = 0.98  # input-gradient norms of about 0.01 or less


def flat_discriminator(run_dir):
    """(logs where D was flat, logs, first such step or None, flat at the last log) from the
    logged `penalty` of a run with a gradient-norm penalty; None for any other run."""
    config = os.path.join(run_dir, config_contract.CONFIG_FILE)
    if not os.path.exists(config):
        return None
    with open(config) as f:
        if config_contract.bindings(f.read()).get("penalty.fn") not in GRADIENT_NORM_PENALTIES:
            return None
    penalty = read_scalars(run_dir).get("penalty")
    if not penalty:
        return None
    flat = [step for step, value in penalty if value > FLAT_PENALTY_MIN]
    return len(flat), len(penalty), (flat[0] if flat else None), penalty[-1][0] in flat


def main(argv):
    del argv
    runs = [FLAGS.runs] if os.path.isdir(os.path.join(FLAGS.runs, "train")) else sorted(
        d for d in glob.glob(os.path.join(FLAGS.runs, "*")) if os.path.isdir(os.path.join(d, "train")))
    if not runs:
        print(f"error: no run with TensorBoard events (train/) under {FLAGS.runs}", file=sys.stderr)
        sys.exit(2)
    if FLAGS.flat_discriminator:
        print("| run | logs with a flat D | first flat step | flat at the last log |")
        print("|---|---|---|---|")
        for run in sorted(runs, key=run_name):
            flat = flat_discriminator(run)
            print(f"| {run_name(run)} | " + ("(no gradient-norm penalty logged: not measured) | | |" if flat is None
                  else f"{flat[0]} of {flat[1]} | {'—' if flat[2] is None else flat[2]} | {'yes' if flat[3] else 'no'} |"))
        print(f"\nFlat: logged penalty > {FLAT_PENALTY_MIN} (its maximum is 0.9801, a zero input gradient at every "
              f"penalty point: D gives those images one output and passes G no gradient). Runs with "
              f"penalty.fn {' or '.join(GRADIENT_NORM_PENALTIES)} only.")
        print(f"machine: {platform.platform()}; command: python {shlex.join(sys.argv)}")
        return
    print(f"| run | metric | mean of last {FLAGS.last} logs | last step | last value |")
    print("|---|---|---|---|---|")
    for run in sorted(runs, key=run_name):
        rows = summarize(run, FLAGS.metrics, FLAGS.last)
        for metric, mean, count, step, value in rows:
            print(f"| {run_name(run)} | {metric} | {mean:.3f} ({count}) | {step} | {value:.3f} |")
        if not rows:
            print(f"| {run_name(run)} | (none of {', '.join(FLAGS.metrics)}) | | | |")
    print(f"\nmachine: {platform.platform()}; command: python {shlex.join(sys.argv)}")


if __name__ == "__main__":
    flags.DEFINE_string("runs", None, "A run directory, or a directory of run directories.", required=True)
    flags.DEFINE_list("metrics", ["lt_accuracy", "rotation_accuracy_real"], "Logged metrics to summarize.")
    flags.DEFINE_integer("last", 8, "Mean over this many last logged values.")
    flags.DEFINE_bool("flat_discriminator", False, "Instead: per run, at how many logs D was flat (no input "
                      "gradient, no gradient to G), from its logged gradient-norm penalty.")
    app.run(main)
