"""Seconds per generator step of a gin configuration on this machine.

python benchmarks/throughput.py --gin_file=gin/cifar10/ssgan.gin \
    --gin_param="dataset.image_folder='../shared/data/cifar10/cifar10-jpeg.tar.gz'" --steps=20

Times `steps` steps after `warmup` steps (tracing, first-batch latency), with the same
step function and input pipeline as training; prints one line with the machine and command.
"""
import os
import platform
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from compare_ssgan import distribute, main as cli, training

flags.DEFINE_integer("steps", 20, "Timed generator steps.")
flags.DEFINE_integer("warmup", 2, "Untimed steps first.")
FLAGS = flags.FLAGS


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main(argv):
    del argv
    import tensorflow as tf

    cli.parse_gin(FLAGS.gin_file, FLAGS.gin_param)
    strategy = distribute.make_strategy()
    with tempfile.TemporaryDirectory() as model_dir:
        trainer = training.Trainer(model_dir, strategy)
        iterator = trainer.make_iterator(0)
        step = trainer.build_train_step()
        one = tf.constant(1, tf.int32)
        for _ in range(FLAGS.warmup):
            step(iterator, one)
        start = time.perf_counter()
        for _ in range(FLAGS.steps):
            metrics = step(iterator, one)
        float(metrics["g_loss"])  # wait for the last step
        seconds = (time.perf_counter() - start) / FLAGS.steps
    opts = trainer.opts
    print(f"seconds_per_step={seconds:.3f} steps={FLAGS.steps} batch={opts.batch_size} "
          f"disc_iters={opts.disc_iters} architecture={trainer.gan.arch.name} model={trainer.gan.name} "
          f"replicas={strategy.num_replicas_in_sync}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"tensorflow {tf.__version__}, commit {_commit()}")
    print("command: python " + " ".join(sys.argv))


if __name__ == "__main__":
    app.run(main)
