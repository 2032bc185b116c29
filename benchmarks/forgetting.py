"""Discriminator forgetting (SS-GAN, Chen et al., CVPR 2019, section 2 and Figure 3).

python benchmarks/forgetting.py --out=benchmarks/results/forgetting --width=0.25 \
    --iterations_per_task=250 --image_folder=../shared/data/cifar10/cifar10-jpeg.tar.gz

A classifier, the resnet_cifar discriminator network (compare_ssgan.architectures.build) with a
new linear head on its pooled features, is trained sequentially on the ten 1-vs-all CIFAR-10
tasks ("is it class k?"), `--iterations_per_task` iterations each (the paper: 1k), the whole
cycle `--cycles` times (the paper: twice, the second cycle starting at 10k). The test accuracy
on the *current* task is logged just before the task's first update (the accuracy the network
carries over from the earlier tasks) and every `--eval_every` iterations. Two variants: `plain`
(Figure 3(a)) and `rotation` (Figure 3(b)), which adds SS-GAN's rotation loss: a 4-way head on
the same features, cross-entropy over the four rotations of `--rotated_batch_size` images of
each batch (compare_ssgan.gans.rotation.rotate_all), weight `--rotation_weight` (beta = 1).
The paper's figure: without rotation the accuracy drops at every switch and the second cycle
is no better than the first; with it, the accuracy carries over and the second cycle is better.

Choices the paper does not state (all flags): batches are balanced (half class k, half the
other nine classes, uniformly), and so are the test sets (`--eval_examples`, half positives),
so chance is 50 %; one binary head is kept across tasks (its meaning changes at each switch);
Adam with SS-GAN's D settings (lr 2e-4, beta1 0, beta2 0.9); spectral norm as in SS-GAN's D.
Both variants start from the same initial weights (same --seed).

Resumable: each variant checkpoints its networks, optimiser and log after every task under
<out>/<variant>/; a rerun continues from the last finished task (a larger --cycles extends a
finished run). Writes <out>/forgetting.json
(settings, code version, every logged accuracy, a summary), <out>/forgetting.csv and
<out>/forgetting.png.
"""
import csv
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from compare_ssgan import architectures, datasets, graphs, provenance  # noqa: E402
from compare_ssgan.errors import UserError  # noqa: E402
from compare_ssgan.gans import rotation  # noqa: E402

flags.DEFINE_string("out", None, "Output directory (results, per-variant checkpoints).")
flags.DEFINE_string("image_folder", None, "CIFAR-10 image folder or .tar.gz; default: tfds cifar10.")
flags.DEFINE_float("width", 1.0, "Channel multiplier of the resnet_cifar discriminator (1.0: the paper's).")
flags.DEFINE_integer("iterations_per_task", 1000, "Training iterations per 1-vs-all task (paper: 1k).")
flags.DEFINE_integer("cycles", 2, "Passes over the ten tasks (paper: 2).")
flags.DEFINE_integer("batch_size", 64, "Images per iteration (half of them the task's class).")
flags.DEFINE_integer("rotated_batch_size", 16, "Images of each batch rotated 4 ways (rotation variant).")
flags.DEFINE_float("rotation_weight", 1.0, "Weight of the rotation loss (SS-GAN's beta).")
flags.DEFINE_integer("eval_every", 100, "Evaluate every this many iterations (and before each task).")
flags.DEFINE_integer("eval_examples", 2000, "Test images per task evaluation (half of them positives).")
flags.DEFINE_float("lr", 2e-4, "Adam learning rate.")
flags.DEFINE_float("beta1", 0.0, "Adam beta1.")
flags.DEFINE_float("beta2", 0.9, "Adam beta2.")
flags.DEFINE_bool("spectral_norm", True, "Spectral norm in the discriminator (as SS-GAN's).")
flags.DEFINE_integer("seed", 0, "Seeds the initial weights (shared by the variants) and the batches.")
flags.DEFINE_list("variants", ["plain", "rotation"], "Which variants to run: plain, rotation.")
FLAGS = flags.FLAGS

VARIANTS = ("plain", "rotation")
NUM_TASKS = 10
CLASS_NAMES = datasets.KNOWN["cifar10"].class_names


def load_split(image_folder, split):
    """(uint8 images [N, 32, 32, 3], int labels [N]) of a CIFAR-10 split."""
    data = datasets.Dataset(name="cifar10", image_folder=image_folder)
    images, labels = [], []
    for x, y in data.eval_input(1000, split=split):
        images.append(np.clip(np.round((x.numpy() + 1.0) * 127.5), 0, 255).astype(np.uint8))
        labels.append(y.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    missing = sorted(set(range(NUM_TASKS)) - set(labels.tolist()))
    if missing:
        raise UserError(f"the {split} split has no images of class(es) {missing}: every 1-vs-all task needs them")
    return images, labels


def _to_float(images):
    return tf.constant(images, tf.float32) / 127.5 - 1.0


class Classifier:
    """resnet_cifar's D + a binary task head (+ a 4-way rotation head), its optimiser and steps."""

    def __init__(self, settings, use_rotation):
        keras.utils.set_random_seed(settings["seed"])  # the same D initialisation for every variant
        config = architectures.ArchitectureConfig("resnet_cifar", z_dim=128, d_spectral_norm=settings["spectral_norm"],
                                                  g_norm="batch_norm", width=settings["width"])
        _, self.net = architectures.build(config, (32, 32, 3), 10)
        self.task_head = keras.layers.Dense(1, name="task_head")
        self.task_head.build((None, self.net.feature_dim))
        self.rotation_head = None
        if use_rotation:
            self.rotation_head = keras.layers.Dense(rotation.NUM_ROTATIONS, name="rotation_head")
            self.rotation_head.build((None, self.net.feature_dim))
        self.rotated = settings["rotated_batch_size"]
        self.rotation_weight = settings["rotation_weight"]
        self.optimizer = keras.optimizers.Adam(settings["lr"], beta_1=settings["beta1"], beta_2=settings["beta2"])
        # Not D's real/fake output layer: this classifier reads only D's features.
        unused = {id(v) for v in self.net.linear.trainable_variables}
        self.variables = [v for v in self.net.trainable_variables if id(v) not in unused] + \
            self.task_head.trainable_variables + (
            self.rotation_head.trainable_variables if use_rotation else [])
        self.optimizer.build(self.variables)
        self.checkpoint = tf.train.Checkpoint(net=self.net, task_head=self.task_head, optimizer=self.optimizer,
                                              **({"rotation_head": self.rotation_head} if use_rotation else {}))
        self.train_step = graphs.function(self._train_step)
        self.predict = graphs.function(lambda x: self.task_head(self.net(x, None, training=False)[1])[:, 0] > 0)

    def _train_step(self, images, targets):
        with tf.GradientTape() as tape:
            _, features = self.net(images, None, training=True)
            logits = self.task_head(features)[:, 0]
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits))
            rotation_loss = tf.constant(0.0)
            if self.rotation_head is not None:  # as compare_ssgan.gans.rotation.RotationTask
                rotated, labels = rotation.rotate_all(images[:self.rotated])
                _, rotated_features = self.net(rotated[self.rotated:], None, training=True)
                all_features = tf.concat([features[:self.rotated], rotated_features], axis=0)
                rotation_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=labels, logits=self.rotation_head(all_features)))
            total = loss + self.rotation_weight * rotation_loss
        self.optimizer.apply_gradients(zip(tape.gradient(total, self.variables), self.variables))
        return loss, rotation_loss

    def accuracy(self, images, targets):
        correct = 0
        for start in range(0, len(images), 500):
            predicted = self.predict(_to_float(images[start:start + 500])).numpy()
            correct += int(np.sum(predicted == (targets[start:start + 500] > 0.5)))
        return correct / len(images)


def balanced_indices(rng, labels, task, count):
    """`count` indices into labels, half of class `task`, half of the others (with replacement
    if a class has too few examples, as in a tiny test subset)."""
    positives, negatives = np.flatnonzero(labels == task), np.flatnonzero(labels != task)
    half = count // 2
    pick = lambda pool, n: rng.choice(pool, n, replace=n > len(pool))  # noqa: E731
    return np.concatenate([pick(positives, half), pick(negatives, count - half)])


def _atomic_json(path, value):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(tmp, path)


def run_variant(name, settings, train, test, out):
    """Trains one variant through every task (resuming); returns its log of accuracies."""
    directory = os.path.join(out, name)
    os.makedirs(directory, exist_ok=True)
    progress_path = os.path.join(directory, "progress.json")
    progress = {"settings": settings, "tasks_done": 0, "log": [], "seconds": 0.0}
    saved = None
    if os.path.exists(progress_path):
        with open(progress_path) as f:
            saved = json.load(f)
        same = lambda a: {k: v for k, v in a.items() if k != "cycles"}  # noqa: E731  (more cycles extend it)
        if same(saved["settings"]) != same(settings):
            raise UserError(f"{directory} holds a run with other settings ({saved['settings']}); use another "
                            f"--out or the same flags (only --cycles may change)")
    model = Classifier(settings, use_rotation=name == "rotation")
    if saved and saved["tasks_done"]:
        model.checkpoint.read(os.path.join(directory, "checkpoint")).assert_consumed()
        progress = dict(saved, settings=settings)
        logging.info("%s: resuming after %d finished task(s).", name, saved["tasks_done"])
    per_task = settings["iterations_per_task"]
    for index in range(progress["tasks_done"], settings["cycles"] * NUM_TASKS):
        start = time.time()
        cycle, task = divmod(index, NUM_TASKS)
        rng = np.random.default_rng([settings["seed"], index])
        eval_rng = np.random.default_rng([settings["seed"], 2**20 + task])  # the same test set per task
        eval_index = balanced_indices(eval_rng, test[1], task, settings["eval_examples"])
        eval_images, eval_targets = test[0][eval_index], (test[1][eval_index] == task).astype(np.float32)

        def log(done, loss=None, rotation_loss=None):
            accuracy = model.accuracy(eval_images, eval_targets)
            progress["log"].append({"iteration": index * per_task + done, "cycle": cycle, "task": task,
                                    "class": CLASS_NAMES[task], "task_iteration": done, "test_accuracy": accuracy,
                                    "optimizer_step": int(model.optimizer.iterations.numpy()),
                                    "train_loss": loss, "rotation_loss": rotation_loss})
            logging.info("%s | cycle %d task %d (%s) | iteration %d/%d | test accuracy %.4f", name, cycle, task,
                         CLASS_NAMES[task], done, per_task, accuracy)

        log(0)
        for i in range(1, per_task + 1):
            batch = balanced_indices(rng, train[1], task, settings["batch_size"])
            batch = rng.permutation(batch)
            loss, rotation_loss = model.train_step(
                _to_float(train[0][batch]), tf.constant(train[1][batch] == task, tf.float32))
            if i % settings["eval_every"] == 0 or i == per_task:
                log(i, float(loss), float(rotation_loss) if name == "rotation" else None)
        model.checkpoint.write(os.path.join(directory, "checkpoint"))
        progress["tasks_done"] = index + 1
        progress["seconds"] += time.time() - start
        _atomic_json(progress_path, progress)  # after the checkpoint: a crash between them redoes one task
    return progress


def summarize(log, per_task):
    """The numbers behind Figure 3's claims, per cycle: accuracy just after each switch (before
    any update on the new task: what carries over), at the end of each task, and over the cycle."""
    summary = {}
    for cycle in sorted({r["cycle"] for r in log}):
        rows = [r for r in log if r["cycle"] == cycle]
        starts = [r["test_accuracy"] for r in rows if r["task_iteration"] == 0]
        ends = [r["test_accuracy"] for r in rows if r["task_iteration"] == per_task]
        summary[f"cycle_{cycle + 1}"] = {
            "mean_accuracy_at_task_start": float(np.mean(starts)),
            "mean_accuracy_at_task_end": float(np.mean(ends)),
            "mean_accuracy_during_tasks": float(np.mean([r["test_accuracy"] for r in rows if r["task_iteration"] > 0])),
        }
    return summary


def plot(results, path, per_task):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.8 * len(names)), sharex=True, sharey=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        log = results[name]["log"]
        ax.plot([r["iteration"] for r in log], [r["test_accuracy"] for r in log], marker=".", lw=1)
        last = max(r["iteration"] for r in log)
        for boundary in range(per_task, last, per_task):
            ax.axvline(boundary, color="grey", lw=0.5, ls=":" if boundary % (NUM_TASKS * per_task) else "-")
        ax.axhline(0.5, color="red", lw=0.5, ls="--")
        ax.set_title({"plain": "(a) plain classifier", "rotation": "(b) with the rotation loss"}.get(name, name),
                     fontsize=10)
        ax.set_ylabel("test accuracy, current task")
    axes[-1, 0].set_xlabel(f"iteration ({per_task} per 1-vs-all task; dotted: task switch, solid: new cycle)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def settings_from_flags():
    for name in ("iterations_per_task", "cycles", "batch_size", "eval_every", "eval_examples"):
        if getattr(FLAGS, name) < 1:
            raise UserError(f"--{name} must be >= 1")
    if FLAGS.batch_size < 2 or FLAGS.eval_examples < 2:
        raise UserError("--batch_size and --eval_examples must be >= 2 (half positives, half negatives)")
    if not 1 <= FLAGS.rotated_batch_size <= FLAGS.batch_size:
        raise UserError(f"--rotated_batch_size must be in [1, --batch_size={FLAGS.batch_size}]")
    if not FLAGS.width > 0:
        raise UserError("--width must be > 0")
    unknown = sorted(set(FLAGS.variants) - set(VARIANTS))
    if unknown or not FLAGS.variants:
        raise UserError(f"unknown --variants {unknown}; valid: {', '.join(VARIANTS)}")
    return {name: getattr(FLAGS, name) for name in (
        "width", "iterations_per_task", "cycles", "batch_size", "rotated_batch_size", "rotation_weight",
        "eval_every", "eval_examples", "lr", "beta1", "beta2", "spectral_norm", "seed")}


def _run():
    if not FLAGS.out:
        raise UserError("--out is required: the directory the results and checkpoints go to")
    settings = settings_from_flags()
    started = time.time()
    train, test = load_split(FLAGS.image_folder, "train"), load_split(FLAGS.image_folder, "test")
    settings["data"] = f"image_folder:{FLAGS.image_folder}" if FLAGS.image_folder else "tfds:cifar10"
    settings["num_train"], settings["num_test"] = len(train[1]), len(test[1])
    os.makedirs(FLAGS.out, exist_ok=True)
    results = {}
    for name in VARIANTS:
        if name in FLAGS.variants:
            progress = run_variant(name, settings, train, test, FLAGS.out)
            results[name] = {"log": progress["log"], "train_seconds": round(progress["seconds"], 1),
                             "summary": summarize(progress["log"], settings["iterations_per_task"])}
    _atomic_json(os.path.join(FLAGS.out, "forgetting.json"), {
        "settings": settings, "code_version": provenance.CODE_VERSION,
        "command": " ".join(["python"] + sys.argv), "variants": results,
        "wall_seconds_this_invocation": round(time.time() - started, 1)})
    with open(os.path.join(FLAGS.out, "forgetting.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "iteration", "cycle", "task", "class", "task_iteration", "test_accuracy"])
        for name, result in results.items():
            for r in result["log"]:
                writer.writerow([name, r["iteration"], r["cycle"], r["task"], r["class"], r["task_iteration"],
                                 f"{r['test_accuracy']:.4f}"])
    plot(results, os.path.join(FLAGS.out, "forgetting.png"), settings["iterations_per_task"])
    for name, result in results.items():
        logging.info("%s: %s", name, json.dumps(result["summary"]))
    return results


def main(argv):
    del argv
    try:
        _run()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
