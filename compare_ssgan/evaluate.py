"""Entry point: FID, KID and IS of any generator or image folder against a dataset split or a folder.

python -m compare_ssgan.evaluate --fake=DIR|SAVEDMODEL|MODEL_DIR [--real=cifar10|DIR] [--split=test]
    [--feature_network=...] [--num_samples=N] [--step=N] [--image_size=HxW] [--json=PATH]

--fake is recognised by its contents: a run's --model_dir (operative_config.gin; --step picks
the checkpoint, default the latest), a SavedModel from compare_ssgan.export (saved_model.pb),
or else a folder of PNG/JPEG images (any size; see eval/image_folders.py for how sizes are
handled and recorded). --real is a dataset name (its --split, default the evaluation split;
--image_folder reads it from local files as `dataset.image_folder` does) or a folder; for a
run it defaults to the run's own dataset and split.

The numbers come from the training-time evaluator's code (eval/evaluator.py): the same fake
sets (latents and labels from `evaluation.eval_seed`), metric code and protocol fields, uniform
random real subset and real-activation cache (eval/real_cache.py; folders are cached too, keyed
by their files), so a run's checkpoint scores exactly as in its scores.jsonl. Options default
to the run's gin config (`evaluation.*`) for a run, and to `evaluation`'s defaults otherwise; a
folder of fakes is one set of all its images unless --num_samples takes a random subset. Real
images: --num_real_samples, default all of a folder, or as many as the fakes from a dataset
split (the training-time rule).

Output: the record as JSON (stdout, or --json=PATH) and one human-readable line on stderr,
each metric named by its feature network (e.g. "FID (CIFAR-10 classifier)").
"""
import datetime
import json
import os
import sys
import time

from compare_ssgan import cli

cli.quiet_tensorflow()  # before anything imports TensorFlow

from absl import app, flags, logging  # noqa: E402

from compare_ssgan import config_contract, datasets, provenance  # noqa: E402
from compare_ssgan.errors import UserError  # noqa: E402
from compare_ssgan.eval import evaluator, feature_networks, image_folders, options, real_cache, scores  # noqa: E402

FLAGS = flags.FLAGS


def define_flags():  # only when run as a command: other entry points define flags of these names
    flags.DEFINE_string("fake", None, "A run's model_dir, an exported SavedModel, or a folder of images.")
    flags.DEFINE_string("real", None, f"A dataset ({', '.join(sorted(datasets.KNOWN))}) or a folder of images.")
    flags.DEFINE_string("split", None, "Split of a --real dataset (default: its evaluation split).")
    flags.DEFINE_string("image_folder", None, "Local copy of the --real dataset (dir or .tar.gz), as dataset.image_folder.")
    flags.DEFINE_string("feature_network", None, f"One of {', '.join(feature_networks.names())}.")
    flags.DEFINE_integer("num_samples", None, "Generated images per set, or a random subset of a fake folder.")
    flags.DEFINE_integer("num_real_samples", None, "Real images (default: see the module docstring).")
    flags.DEFINE_integer("num_fake_sets", None, "Sets of generated images (mean and std are reported).")
    flags.DEFINE_integer("step", None, "--fake is a run: the checkpoint step (default: the latest).")
    flags.DEFINE_string("image_size", None, "Crop and resize every folder image to HxW (default: as stored).")
    flags.DEFINE_enum("z_prior", None, ["normal", "uniform"], "Prior of a SavedModel exported elsewhere.")
    flags.DEFINE_bool("jit_compile", None, "--fake is a run: compile generation and the feature network "
                      "with XLA (default: as the run was trained, options.jit_compile).")
    flags.DEFINE_string("json", None, "Write the JSON record here instead of stdout.")


def kind(path):
    if not path or not os.path.isdir(path):
        raise UserError(f"{path} is not a directory: pass a run's model_dir, an exported SavedModel or a "
                        f"folder of images")
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return "saved_model"
    if os.path.isfile(os.path.join(path, config_contract.CONFIG_FILE)):
        return "run"
    return "folder"


class SavedGenerator:
    """An exported generator: z [, labels] -> images in [-1, 1] (export.py's signature)."""

    def __init__(self, path, z_prior=None):
        import tensorflow as tf

        from compare_ssgan import architectures
        from compare_ssgan.export import METADATA_FILE, SIGNATURE

        try:
            self._model = tf.saved_model.load(path)
            self._fn = self._model.signatures[SIGNATURE]
        except (KeyError, OSError, ValueError) as e:
            raise UserError(f"cannot load the SavedModel {path} with a '{SIGNATURE}' signature: {e}") from e
        inputs = self._fn.structured_input_signature[1]
        if "z" not in inputs or len(inputs["z"].shape) != 2 or inputs["z"].shape[1] is None:
            raise UserError(f"the SavedModel {path} must take z [N, z_dim] (compare_ssgan.export's signature); "
                            f"it takes {inputs}")
        self.z_dim, self.conditional = int(inputs["z"].shape[1]), "labels" in inputs
        meta_path = os.path.join(path, METADATA_FILE)
        self.metadata = {}
        if os.path.isfile(meta_path):
            with open(meta_path, encoding="utf-8") as f:
                self.metadata = json.load(f)
        prior = z_prior or self.metadata.get("z_prior")
        if prior is None:
            raise UserError(f"{path} has no {METADATA_FILE} naming its latent prior: pass --z_prior=normal|uniform")
        self.num_classes = int(self.metadata.get("num_classes") or 1)
        if self.conditional and self.num_classes < 2:
            raise UserError(f"{path} is conditional but has no {METADATA_FILE} naming its number of classes")
        self.prior = architectures.ArchitectureConfig("saved_model", self.z_dim, False, "none", 1.0, z_prior=prior)

    def __call__(self, z, labels):
        inputs = {"z": z, "labels": labels} if self.conditional else {"z": z}
        return self._fn(**inputs)["images"]


def _options(**overrides):
    return options.evaluation_options(**{k: v for k, v in overrides.items() if v is not None})


def _real(real, split, image_folder, image_size, run=None):
    """(source for real_activations, its split, a description)."""
    if real is None:
        if run is None:
            raise UserError("--real is required: a dataset name (e.g. cifar10) or a folder of images")
        real, image_folder = run.trainer.data.name, image_folder or run.image_folder
    if real in datasets.KNOWN:
        data = datasets.Dataset(name=real, image_folder=image_folder)
        split = split or data.info.eval_split
        valid = (data.info.train_split, data.info.eval_split)
        if split not in valid:
            raise UserError(f"unknown --split={split} for {real}; valid: {', '.join(valid)}")
        return data, split, {"kind": "dataset", "dataset": real, "source": data.source_description, "split": split,
                             "preprocessing": "the training pipeline's (datasets.py)"}
    if not os.path.isdir(real):
        raise UserError(f"--real={real} is neither a dataset ({', '.join(sorted(datasets.KNOWN))}) nor a directory")
    folder = image_folders.ImageFolder(real, image_size)
    return folder, image_folders.SPLIT, {"kind": "folder", "path": folder.path, "images": len(folder),
                                         "source": folder.source_description, "preprocessing": folder.preprocessing}


def evaluate(fake, real=None, split=None, image_folder=None, feature_network=None, num_samples=None,
             num_real_samples=None, num_fake_sets=None, step=None, image_size=None, z_prior=None,
             jit_compile=None):
    """The record (a dict) of --fake against --real; see the module docstring."""
    import gin

    start = time.time()
    fake_kind, run, extra = kind(fake), None, {}
    image_size = image_folders.parse_image_size(image_size)
    if fake_kind == "run":
        from compare_ssgan import trained

        run = trained.load(fake, step)  # parses the run's gin config: its evaluation options apply
        extra = {"step": run.step, "checkpoint": os.path.basename(run.checkpoint),
                 **evaluator.run_description(run.trainer), "gin_config": gin.operative_config_str()}
        fake_desc = {"kind": "run", **run.describe()}
    else:
        gin.clear_config()
        if step is not None:
            raise UserError("--step is for a run's model_dir; --fake is not one")
    if fake_kind == "folder":
        folder = image_folders.ImageFolder(fake, image_size)
        num_samples = num_samples or len(folder)
        if num_samples > len(folder):
            raise UserError(f"--num_samples={num_samples} but {fake} has {len(folder)} images")
        if num_fake_sets not in (None, 1):
            raise UserError("--num_fake_sets applies to generators; a folder is one set")
        opts = _options(feature_network=feature_network, num_samples=num_samples, num_fake_sets=1)
        fake_desc = {"kind": "folder", "path": folder.path, "images": len(folder),
                     "source": folder.source_description, "preprocessing": folder.preprocessing}
    else:
        opts = _options(feature_network=feature_network, num_samples=num_samples, num_fake_sets=num_fake_sets)
    if fake_kind == "saved_model":
        saved = SavedGenerator(fake, z_prior)
        fake_desc = {"kind": "saved_model", "path": os.path.abspath(fake), "export": {
            k: v for k, v in saved.metadata.items() if k != "gin_config"}, "z_prior": saved.prior.z_prior}
    data, real_split, real_desc = _real(real, split, image_folder, image_size, run)
    network = feature_networks.build(opts.feature_network)
    num_real = num_real_samples or (len(data) if real_desc["kind"] == "folder" else opts.num_samples)
    if real_desc["kind"] == "folder" and num_real > len(data):
        raise UserError(f"--num_real_samples={num_real} but {data.path} has {len(data)} images")
    real_features, _ = real_cache.real_activations(data, real_split, network, num_real)
    if fake_kind == "folder":
        features, logits = real_cache.real_activations(folder, image_folders.SPLIT, network, opts.num_samples)
        per_set = [evaluator.set_scores(real_features, features, logits, "ok", opts)]
    elif fake_kind == "run":
        jit_compile = run.trainer.opts.jit_compile if jit_compile is None else jit_compile
        embed = evaluator.generator_embedder(run.generator, network, jit_compile)
        per_set = evaluator.score_generated_sets(embed, run.arch, run.num_classes, real_features, opts)
    else:
        per_set = evaluator.score_generated_sets(evaluator.set_embedder(saved, network), saved.prior,
                                                 saved.num_classes, real_features, opts)
    return {
        **evaluator.combine_sets(per_set),
        "fake": fake_desc, "real": real_desc, **extra,
        **evaluator.protocol(network, opts, real_split, len(real_features)), "per_set": per_set,
        "code_version": provenance.CODE_VERSION, "eval_seconds": round(time.time() - start, 2),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def summary(record):
    """The human-readable line: metrics, then what was compared with what."""
    fake, real = record["fake"], record["real"]
    what = {"run": lambda: f"{fake['model_dir']} step {fake['step']}", "saved_model": lambda: fake["path"],
            "folder": lambda: fake["path"]}[fake["kind"]]()
    against = f"{real['dataset']} {real['split']}" if real["kind"] == "dataset" else real["path"]
    return (f"{scores.summary_line(record)} | {record['num_fake_sets']} set(s) x {record['num_samples']} "
            f"of {what} vs {record['num_real_samples']} of {against}")


def _run(argv):
    del argv
    if not FLAGS.fake:
        raise UserError("--fake is required: a run's model_dir, an exported SavedModel or a folder of images")
    record = evaluate(FLAGS.fake, FLAGS.real, FLAGS.split, FLAGS.image_folder, FLAGS.feature_network,
                      FLAGS.num_samples, FLAGS.num_real_samples, FLAGS.num_fake_sets, FLAGS.step,
                      FLAGS.image_size, FLAGS.z_prior, FLAGS.jit_compile)
    text = json.dumps(scores.json_safe(record), allow_nan=False)
    if FLAGS.json:
        with open(FLAGS.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        logging.info("Wrote %s.", FLAGS.json)
    else:
        print(text)
    print(summary(record), file=sys.stderr)


if __name__ == "__main__":
    define_flags()
    app.run(cli.exit_on_user_error(_run))
