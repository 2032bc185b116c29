"""Entry point: python -m compare_ssgan.export --model_dir=DIR [--step=N] --out=DIR [--standing_stats=K].

Writes a TensorFlow SavedModel of a run's generator (the EMA generator when the run has one),
in inference mode, with its BN moving statistics and spectral-norm vectors baked in, so it runs
anywhere TensorFlow runs, without this package:

    import tensorflow as tf
    generate = tf.saved_model.load(DIR).signatures["serving_default"]
    images = generate(z=tf.random.normal([16, z_dim]))["images"]        # unconditional
    images = generate(z=..., labels=tf.constant([...], tf.int32))["images"]  # conditional

Serving signature `serving_default`:
  inputs   z       float32 [N, z_dim], drawn from the run's prior (`z_prior` in the JSON:
                   'normal' N(0, 1) or 'uniform' U(-1, 1))
           labels  int32 [N] in [0, num_classes), only for conditional runs
  outputs  images  float32 [N, H, W, C] in [-1, 1] (the generator's tanh range, NHWC);
                   uint8 pixels are round((images + 1) * 127.5)
The same function is the loaded object's `generate` attribute. Beside saved_model.pb,
`compare_ssgan_export.json` names the run, step, checkpoint, generator (EMA or not), prior,
z_dim, classes, image shape, the signature, the run's gin config and the code version.

--standing_stats=K first recomputes the generator's BN statistics from K batches of the prior
(trained.standing_statistics; BigGAN-PyTorch uses 16): the EMA generator otherwise carries the
raw G's statistics.
"""
import datetime
import json
import os

from compare_ssgan import cli

cli.quiet_tensorflow()  # before anything imports TensorFlow

from absl import app, flags, logging  # noqa: E402

from compare_ssgan import config_contract, graphs  # noqa: E402
from compare_ssgan import trained as trained_lib  # noqa: E402
from compare_ssgan.errors import UserError  # noqa: E402

METADATA_FILE = "compare_ssgan_export.json"
SIGNATURE = "serving_default"

FLAGS = flags.FLAGS


def define_flags():  # only when run as a command: other entry points define flags of these names
    flags.DEFINE_string("model_dir", None, "A training run's --model_dir.")
    flags.DEFINE_integer("step", None, "Checkpoint step to export (default: the latest).")
    flags.DEFINE_string("out", None, "Directory for the SavedModel (must not exist, or be empty).")
    flags.DEFINE_integer("standing_stats", 0, "Recompute BN statistics from this many batches first (0: no).")


def signature_description(trained):
    h, w, c = trained.image_shape
    inputs = {"z": f"float32 [N, {trained.arch.z_dim}] from the run's prior ({trained.arch.z_prior})"}
    if trained.conditional:
        inputs["labels"] = f"int32 [N] class indices in [0, {trained.num_classes})"
    return {"name": SIGNATURE, "inputs": inputs,
            "outputs": {"images": f"float32 [N, {h}, {w}, {c}] in [-1, 1]; uint8 = round((images + 1) * 127.5)"}}


def export(trained, out):
    """Writes the SavedModel and its JSON to `out`; returns the JSON's contents."""
    import tensorflow as tf

    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise UserError(f"--out={out} exists and is not an empty directory; choose a new path")
    generator, z_dim = trained.generator, trained.arch.z_dim
    z_spec = tf.TensorSpec([None, z_dim], tf.float32, name="z")
    if trained.conditional:
        def generate(z, labels):
            return {"images": generator(z, labels, training=False)}
        spec = [z_spec, tf.TensorSpec([None], tf.int32, name="labels")]
    else:
        def generate(z):  # the generator ignores labels; zeros keep the in-package call
            return {"images": generator(z, tf.zeros([tf.shape(z)[0]], tf.int32), training=False)}
        spec = [z_spec]
    module = tf.Module()
    # The variables are listed, not the Keras model: tf.train tracking does not see layers kept
    # in Python lists (see GANModel.trackables), and the model would add Keras' own signature.
    module.variables_list = list(generator.weights)
    module.generate = graphs.function(generate, input_signature=spec)
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.WARNING)  # TensorFlow's saver logs every step at INFO
    try:
        tf.saved_model.save(module, out, signatures={SIGNATURE: module.generate})
    except OSError as e:
        raise UserError(f"cannot write the SavedModel to --out={out}: {e}") from e
    finally:
        logging.set_verbosity(verbosity)
    with open(os.path.join(trained.model_dir, config_contract.CONFIG_FILE), encoding="utf-8") as f:
        gin_config = f.read()
    metadata = {**trained.describe(), "signature": signature_description(trained),
                "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "gin_config": gin_config}
    with open(os.path.join(out, METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=1)
    return metadata


def _run(argv):
    del argv
    if not FLAGS.model_dir or not FLAGS.out:
        raise UserError("--model_dir (a training run) and --out (a new directory) are required")
    if FLAGS.standing_stats < 0:
        raise UserError("--standing_stats must be >= 0")
    trained = trained_lib.load(FLAGS.model_dir, FLAGS.step)
    if FLAGS.standing_stats:
        trained_lib.standing_statistics(trained, FLAGS.standing_stats)
    export(trained, FLAGS.out)
    logging.info("Exported %s step %d (%s) to %s: signature %s, images float32 in [-1, 1].",
                 FLAGS.model_dir, trained.step, "EMA generator" if trained.is_ema else "generator",
                 FLAGS.out, SIGNATURE)


if __name__ == "__main__":
    define_flags()
    app.run(cli.exit_on_user_error(_run))
