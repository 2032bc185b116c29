"""Trains the offline feature network `cifar10_classifier` and reports its test accuracy.

    python benchmarks/train_cifar10_classifier.py \
        --image_folder=../shared/data/cifar10/cifar10-jpeg.tar.gz \
        --output=compare_ssgan/eval/weights/cifar10_classifier.weights.h5 \
        --results=benchmarks/results/cifar10_classifier/results.json

Data come through compare_ssgan.datasets.Dataset (image_folder or tfds), images in [-1, 1] as
the GANs produce them. The network is compare_ssgan.eval.feature_networks.build_cifar10_classifier.
Recipe (sized for <= 15 minutes on a 2-core CPU): random crop (4-pixel reflect padding) and
horizontal flip; SGD with Nesterov momentum 0.9, batch 256, learning rate linearly up to 0.1
over the first epoch and linearly down to 0, decoupled weight decay 5e-4; no label smoothing
(IS reads the logits). Optionally (--fid_samples) also measures the
"FID (CIFAR-10 classifier)" of the test split against the train split with the saved network.
"""
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from compare_ssgan import datasets  # noqa: E402
from compare_ssgan.eval import feature_networks  # noqa: E402

flags.DEFINE_string("image_folder", None, "CIFAR-10 image folder or .tar.gz (default: tfds).")
flags.DEFINE_string("output", feature_networks.CIFAR10_WEIGHTS, "Where to write the .weights.h5.")
flags.DEFINE_string("results", None, "Optional JSON file for the measured numbers.")
flags.DEFINE_integer("epochs", 6, "Training epochs.")
flags.DEFINE_integer("batch_size", 256, "Batch size.")
flags.DEFINE_float("lr", 0.1, "Peak learning rate.")
flags.DEFINE_float("weight_decay", 5e-4, "Decoupled weight decay (multiplied by the learning rate).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("fid_samples", 0, "If > 0: FID (CIFAR-10 classifier) of this many test vs "
                     "train images with the saved network (0 skips it).")
FLAGS = flags.FLAGS


def load_split(data, split):
    """A whole split as (uint8 [N, 32, 32, 3], int32 [N]); pixels are exact (JPEG-decoded bytes)."""
    images, labels = [], []
    for x, y in data.eval_input(1000, split=split):
        images.append(np.round((x.numpy() + 1.0) * 127.5).astype(np.uint8))
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def to_model_range(images):
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def augment(images, labels):
    """Per-image random crop of the 4-pixel reflect-padded batch and random flip, vectorised
    (a per-example map costs a 2-core CPU a noticeable share of the training time)."""
    batch = tf.shape(images)[0]
    padded = tf.pad(images, [[0, 0], [4, 4], [4, 4], [0, 0]], mode="REFLECT")
    offsets = tf.random.uniform([batch, 2], 0, 9, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(32)[None]
    cols = offsets[:, 1:] + tf.range(32)[None]
    images = tf.gather(padded, rows, axis=1, batch_dims=1)
    images = tf.gather(images, cols, axis=2, batch_dims=1)
    flip = tf.random.uniform([batch, 1, 1, 1]) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images), labels


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak, warmup_steps, total_steps):
        self.peak, self.warmup, self.total = float(peak), float(warmup_steps), float(total_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        up = step / self.warmup
        down = (self.total - step) / (self.total - self.warmup)
        return self.peak * tf.maximum(0.0, tf.minimum(up, down))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup, "total_steps": self.total}


def git_commit():
    try:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True,
                               text=True, check=True).stdout.strip()
        return commit + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv):
    del argv
    start = time.time()
    keras.utils.set_random_seed(FLAGS.seed)
    data = datasets.Dataset(name="cifar10", image_folder=FLAGS.image_folder)
    x_train, y_train = load_split(data, "train")
    x_test, y_test = load_split(data, "test")
    load_seconds = time.time() - start
    print(f"loaded {len(x_train)} train / {len(x_test)} test images from {data.source_description} "
          f"in {load_seconds:.0f}s", flush=True)

    steps_per_epoch = len(x_train) // FLAGS.batch_size
    train = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
             .shuffle(len(x_train), seed=FLAGS.seed, reshuffle_each_iteration=True)
             .batch(FLAGS.batch_size, drop_remainder=True)
             .map(lambda x, y: augment(to_model_range(x), y), num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
    test = (tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(1000)
            .map(lambda x, y: (to_model_range(x), y)))

    net = feature_networks.build_cifar10_classifier()
    model = keras.Model(net.input, net.output["logits"])  # same layers; trains the logits
    schedule = WarmupLinearDecay(FLAGS.lr, steps_per_epoch, FLAGS.epochs * steps_per_epoch)
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True,
                                                 weight_decay=FLAGS.weight_decay),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    print(f"parameters: {net.count_params():,}", flush=True)
    train_start = time.time()
    model.fit(train, epochs=FLAGS.epochs, verbose=2)
    train_seconds = time.time() - train_start
    _, test_accuracy = model.evaluate(test, verbose=0)

    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    tmp = FLAGS.output + ".tmp.weights.h5"
    net.save_weights(tmp)
    os.replace(tmp, FLAGS.output)
    total_seconds = time.time() - start
    results = {
        "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": f"{platform.node()} ({os.cpu_count()} CPUs), tensorflow {tf.__version__}, keras {keras.__version__}",
        "data": data.source_description,
        "epochs": FLAGS.epochs, "batch_size": FLAGS.batch_size, "lr": FLAGS.lr,
        "weight_decay": FLAGS.weight_decay, "seed": FLAGS.seed,
        "parameters": int(net.count_params()),
        "weights": os.path.relpath(FLAGS.output),
        "weights_bytes": os.path.getsize(FLAGS.output),
        "test_accuracy": round(float(test_accuracy), 4),
        "data_load_seconds": round(load_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "wall_seconds_load_train_save": round(total_seconds, 1),
    }
    print(f"test accuracy {test_accuracy:.4f}; training {train_seconds:.0f}s; total {total_seconds:.0f}s "
          f"-> {FLAGS.output}", flush=True)

    if FLAGS.fid_samples > 0:
        from compare_ssgan.eval import metrics

        n = FLAGS.fid_samples
        network = feature_networks.Cifar10Classifier(FLAGS.output, batch_size=500)
        rng = np.random.default_rng(FLAGS.seed)
        pick = lambda x: x[rng.permutation(len(x))[:n]]  # noqa: E731 - a random subset
        real_test, _ = network(to_model_range(pick(x_test)).numpy())
        real_train, _ = network(to_model_range(pick(x_train)).numpy())
        fid = metrics.fid_from_activations(real_train, real_test)
        kid, kid_std = metrics.kernel_inception_distance(real_train, real_test)
        results["fid_cifar10_classifier_test_vs_train"] = {
            "label": network.info.label, "feature_network": network.info.as_dict(),
            "num_samples_each": n, "fid": round(fid, 4), "kid": kid,
            "kid_std": kid_std if np.isfinite(kid_std) else None}
        print(f"{network.info.label} of {min(n, len(x_test))} test vs {min(n, len(x_train))} train "
              f"images: {fid:.4f} (KID {kid:.5f} +- {kid_std:.5f})", flush=True)

    if FLAGS.results:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
        with open(FLAGS.results, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    app.run(main)
