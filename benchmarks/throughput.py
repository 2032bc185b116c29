"""Seconds per generator step of a gin configuration on this machine.

One configuration:
python benchmarks/throughput.py --gin_file=gin/cifar10/ssgan.gin \
    --gin_param="dataset.image_folder='../shared/data/cifar10/cifar10-jpeg.tar.gz'" --steps=20

The speed-option matrix ({uncond, ssgan} x {float32, --mixed} x {eager loop, steps_per_loop,
XLA}) at a preset, and the time of a 10,000-sample FID (generation, feature network, FID) with
and without XLA, as a Markdown table:
python benchmarks/throughput.py --matrix --preset=gin/presets/mini.gin \
    --gin_param="dataset.image_folder='../shared/data/cifar10/cifar10-jpeg.tar.gz'" --steps=20

"eager loop" is one tf.function call per generator step, as options.steps_per_loop = 1;
"steps_per_loop" runs --loop steps per call; "XLA" adds options.jit_compile. Each cell times
`steps` steps after one untimed call (tracing, compilation, first-batch latency), with the
training loop's own step function and input pipeline; prints the machine and the command.
The FID rows time what the evaluator runs per fake set (eval/evaluator.score_generated_sets)
with the preset's feature network (named in the table: on a machine without Inception it is the
CIFAR-10 classifier), after one untimed batch; the real activations are computed (or read from
their cache) first and not timed: a run computes them once.
"""
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from compare_ssgan import distribute, main as cli, training

flags.DEFINE_integer("steps", 20, "Timed generator steps.")
flags.DEFINE_integer("warmup", 2, "Untimed steps first (single-configuration mode).")
flags.DEFINE_bool("matrix", False, "Measure the speed-option matrix and print a Markdown table.")
flags.DEFINE_string("preset", "gin/presets/mini.gin", "Preset gin file for --matrix.")
flags.DEFINE_list("models", ["gin/cifar10/uncond.gin", "gin/cifar10/ssgan.gin"], "Model gin files for --matrix.")
flags.DEFINE_string("mixed", "mixed_bfloat16", "The mixed-precision policy of --matrix "
                    "(mixed_float16 on GPUs before Ampere).")
flags.DEFINE_integer("fid_samples", 10_000, "Generated samples of the matrix's FID rows (0: no FID rows).")
flags.DEFINE_integer("loop", 10, "options.steps_per_loop of the matrix's steps_per_loop and XLA columns.")
FLAGS = flags.FLAGS


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _device():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return ", ".join(tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def measure(steps, warmup_calls=1):
    """(seconds per generator step, trainer) for the gin configuration now parsed."""
    import tensorflow as tf

    strategy = distribute.make_strategy()
    with tempfile.TemporaryDirectory() as model_dir:
        trainer = training.Trainer(model_dir, strategy)
        iterator = trainer.make_iterator(0)
        loop = trainer.build_train_step()
        per_call = tf.constant(trainer.opts.steps_per_loop, tf.int32)
        for _ in range(warmup_calls):
            float(trainer._run(loop, iterator, trainer.opts.steps_per_loop)["g_loss"])
        calls = math.ceil(steps / trainer.opts.steps_per_loop)
        start = time.perf_counter()
        for _ in range(calls):
            metrics = loop(iterator, per_call)
        float(metrics["g_loss"])  # wait for the last call
        seconds = (time.perf_counter() - start) / (calls * trainer.opts.steps_per_loop)
    return seconds, trainer


def measure_fid(trainer, num_samples, jit_compile):
    """(seconds for one fake set of `num_samples` scored by FID/KID/IS, the FID's label)."""
    import dataclasses

    from compare_ssgan.eval import evaluator, feature_networks, options, real_cache

    opts = dataclasses.replace(options.evaluation_options(), num_samples=num_samples, num_fake_sets=1)
    network = feature_networks.build(opts.feature_network)
    data = trainer.data
    real_split = opts.real_split or data.info.eval_split  # as the Evaluator
    real_features, _ = real_cache.real_activations(data, real_split, network, num_samples)
    embed = evaluator.generator_embedder(trainer.gan.sampling_generator, network, jit_compile)
    # Tracing and compilation, untimed: a full batch, and the last partial one if there is one.
    for size in {opts.sample_batch_size, num_samples % opts.sample_batch_size} - {0}:
        evaluator.generated_set(embed, trainer.gan.arch, data.num_classes,
                                dataclasses.replace(opts, num_samples=size), 0)
    start = time.perf_counter()
    evaluator.score_generated_sets(embed, trainer.gan.arch, data.num_classes, real_features, opts)
    return time.perf_counter() - start, network.info.label


def run_matrix():
    import gin
    import keras

    modes = {"eager loop": [], f"steps_per_loop={FLAGS.loop}": [f"options.steps_per_loop={FLAGS.loop}"],
             f"XLA, steps_per_loop={FLAGS.loop}": [f"options.steps_per_loop={FLAGS.loop}", "options.jit_compile=True"]}
    # Intervals that any steps_per_loop divides, and no checkpoints or samples while timing.
    quiet = ["options.log_every=1000000", "options.save_every=1000000", "options.sample_every=1000000"]
    rows, fid_rows = [], []
    for model_file in FLAGS.models:
        for precision in ("float32", FLAGS.mixed):
            for mode, params in modes.items():
                gin.clear_config()
                keras.backend.clear_session()
                cli.parse_gin([model_file, FLAGS.preset],
                              list(FLAGS.gin_param) + quiet + params + [f"options.precision='{precision}'"])
                seconds, trainer = measure(FLAGS.steps)
                batch = trainer.opts.batch_size
                rows.append(f"| {trainer.gan.name} | {precision} | {mode} | {seconds:.3f} | {batch / seconds:.1f} |")
                print(rows[-1], flush=True)
                if FLAGS.fid_samples and not fid_rows and precision == "float32":  # the first model's G
                    for jit_compile in (False, True):
                        fid_seconds, label = measure_fid(trainer, FLAGS.fid_samples, jit_compile)
                        fid_rows.append(f"| {label}, {FLAGS.fid_samples:,} samples, {trainer.gan.name} sampling G "
                                        f"(float32) | {'XLA' if jit_compile else 'graph'} | {fid_seconds:.1f} |")
                        print(fid_rows[-1], flush=True)
    print(f"\nDevice: {_device()}; preset {FLAGS.preset}; batch {batch}; {FLAGS.steps} timed steps per cell "
          f"after one untimed call.\n")
    print("| model | precision | loop | s/step | images/s |\n|---|---|---|---|---|")
    print("\n".join(rows))
    if fid_rows:
        print("\n| one fake set scored (generation, features, FID/KID/IS) | compiled as | seconds |\n|---|---|---|")
        print("\n".join(fid_rows))


def main(argv):
    del argv
    import tensorflow as tf

    if FLAGS.matrix:
        run_matrix()
    else:
        cli.parse_gin(FLAGS.gin_file, FLAGS.gin_param)
        seconds, trainer = measure(FLAGS.steps, warmup_calls=FLAGS.warmup)
        opts = trainer.opts
        print(f"seconds_per_step={seconds:.3f} steps={FLAGS.steps} batch={opts.batch_size} "
              f"disc_iters={opts.disc_iters} architecture={trainer.gan.arch.name} model={trainer.gan.name} "
              f"replicas={trainer.strategy.num_replicas_in_sync} steps_per_loop={opts.steps_per_loop} "
              f"jit_compile={opts.jit_compile} precision={opts.precision}")
    print(f"machine: {platform.platform()}, {_device()}, python {platform.python_version()}, "
          f"tensorflow {tf.__version__}, commit {_commit()}")
    print("command: python " + shlex.join(sys.argv))


if __name__ == "__main__":
    app.run(main)
