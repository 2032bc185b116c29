"""Entry point: images from a trained run's generator.

python -m compare_ssgan.generate --model_dir=DIR [--step=N] --num=N --out=DIR_OR_PNG [--seed=S]
    [--labels=...] [--truncation=T] [--interpolate=K] [--standing_stats=B]

Uses the EMA generator when the run has one (trained.py), in inference mode, on the default
device (an accelerator when TensorFlow sees one, else the CPU). `--out` ending in .png writes
one grid; otherwise a directory of numbered PNGs (000000.png, ...) is written. Either way a
JSON file (`<out>.json`, or `generation.json` in the directory) records the run, step, seed,
labels and options. The same --seed gives the same images.

--labels (conditional runs only): class indices or names, comma-separated, repeated to fill
    --num (e.g. `--labels=3` or `--labels=cat,dog`); default: 0, 1, 2, ... cycled, as the
    training sample grids.
--truncation=T: latents from the prior restricted to [-T, T] per coordinate (latents.py).
--interpolate=K: --num linear paths of K images each (one grid row per path), between pairs of
    latents drawn with --seed; a conditional path keeps one label.
"""
import json
import os

from compare_ssgan import cli

cli.quiet_tensorflow()  # before anything imports TensorFlow

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from compare_ssgan import latents, trained as trained_lib  # noqa: E402
from compare_ssgan.errors import UserError  # noqa: E402

FLAGS = flags.FLAGS
_BATCH = 100


def define_flags():  # only when run as a command: other entry points define flags of these names
    flags.DEFINE_string("model_dir", None, "A training run's --model_dir.")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
    flags.DEFINE_integer("num", 64, "Number of images (with --interpolate: number of paths).")
    flags.DEFINE_string("out", None, "A .png path (one grid) or a directory (one PNG per image).")
    flags.DEFINE_integer("seed", 0, "Seed of the latents (and of --interpolate's end points).")
    flags.DEFINE_string("labels", None, "Conditional runs: class indices or names, comma-separated.")
    flags.DEFINE_float("truncation", None, "Restrict latents to [-T, T] per coordinate.")
    flags.DEFINE_integer("interpolate", None, "Images per interpolation path (>= 2).")
    flags.DEFINE_integer("columns", None, "Grid columns (default 8, or --interpolate).")
    flags.DEFINE_integer("standing_stats", 0, "Recompute BN statistics from this many batches first (0: no).")


def parse_labels(spec, num, trained):
    """int32 [num]: `spec` (indices or class names, comma-separated) cycled, or 0, 1, 2, ...;
    None for unconditional runs."""
    if not trained.conditional:
        if spec:
            raise UserError(f"--labels={spec}: this run's generator is unconditional (model.conditional = "
                            f"False) and ignores labels; drop --labels")
        return None
    n = trained.num_classes
    if not spec:
        return np.arange(num, dtype=np.int32) % n
    from compare_ssgan import datasets

    names = datasets.KNOWN[trained.trainer.data.name].class_names or ()
    values = []
    for item in (s.strip() for s in spec.split(",")):
        if item in names:
            values.append(names.index(item))
        elif item.lstrip("-").isdigit() and 0 <= int(item) < n:
            values.append(int(item))
        else:
            raise UserError(f"--labels: {item!r} is not a class of this run: use indices 0..{n - 1}"
                            + (f" or names {', '.join(names)}" if names else ""))
    return np.resize(np.asarray(values, np.int32), num)


def sample(trained, num, seed, labels=None, truncation=None, interpolate=None):
    """float32 [num, H, W, C] in [-1, 1] (with `interpolate`: [num * interpolate, ...], path by path)."""
    import tensorflow as tf

    if num < 1:
        raise UserError(f"--num={num} must be >= 1")
    if interpolate is not None:
        ends = latents.sample(trained.arch, 2 * num, seed, truncation)
        z = tf.reshape(latents.interpolate(ends[:num], ends[num:], interpolate), [-1, trained.arch.z_dim])
        labels = None if labels is None else np.repeat(labels, interpolate)
    else:
        z = latents.sample(trained.arch, num, seed, truncation)
    if labels is None:
        labels = np.zeros([len(z)], np.int32)
    images = [trained.generate(z[i:i + _BATCH], labels[i:i + _BATCH]).numpy() for i in range(0, len(z), _BATCH)]
    return np.concatenate(images)


def write(images, out, columns):
    """One grid PNG (`out` ends in .png) or numbered PNGs in the directory `out`; returns paths."""
    import tensorflow as tf

    from compare_ssgan import training

    if out.lower().endswith(".png"):
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        tf.io.write_file(out, tf.io.encode_png(training.image_grid(images, columns)))
        return [out]
    os.makedirs(out, exist_ok=True)
    pixels = np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
    paths = [os.path.join(out, f"{i:06d}.png") for i in range(len(pixels))]
    for path, image in zip(paths, pixels):
        tf.io.write_file(path, tf.io.encode_png(image))
    return paths


def _run(argv):
    del argv
    if not FLAGS.model_dir or not FLAGS.out:
        raise UserError("--model_dir (a training run) and --out (a .png grid or a directory) are required")
    trained = trained_lib.load(FLAGS.model_dir, FLAGS.step)
    if FLAGS.standing_stats:
        trained_lib.standing_statistics(trained, FLAGS.standing_stats)
    labels = parse_labels(FLAGS.labels, FLAGS.num, trained)
    images = sample(trained, FLAGS.num, FLAGS.seed, labels, FLAGS.truncation, FLAGS.interpolate)
    try:
        paths = write(images, FLAGS.out, FLAGS.columns or FLAGS.interpolate or 8)
    except OSError as e:
        raise UserError(f"cannot write --out={FLAGS.out}: {e}") from e
    record = {**trained.describe(), "num": FLAGS.num, "seed": FLAGS.seed, "truncation": FLAGS.truncation,
              "interpolate": FLAGS.interpolate, "interpolation": "linear" if FLAGS.interpolate else None,
              "labels": None if labels is None else labels.tolist(), "images": len(images),
              "format": "PNG, uint8 = round((x + 1) * 127.5) of the generator's [-1, 1] output"}
    meta = FLAGS.out + ".json" if FLAGS.out.lower().endswith(".png") else os.path.join(FLAGS.out, "generation.json")
    with open(meta, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    logging.info("Wrote %d image(s) from %s step %d (%s) to %s.", len(images), FLAGS.model_dir, trained.step,
                 "EMA generator" if trained.is_ema else "generator",
                 paths[0] if len(paths) == 1 else FLAGS.out)


if __name__ == "__main__":
    define_flags()
    app.run(cli.exit_on_user_error(_run))
