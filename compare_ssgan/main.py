"""Entry point: python -m compare_ssgan.main --gin_file=... --model_dir=... [--schedule=train].

--gin_file and --gin_param repeat; later ones override earlier ones. User mistakes (bad gin
binding, unknown names, missing data, unwritable model_dir, corrupted checkpoint, NaN loss)
end with one message naming the fix and exit code 2, not a traceback.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from compare_ssgan import provenance, runner  # noqa: E402  (provenance first reads the code version)
from compare_ssgan.errors import UserError  # noqa: E402

flags.DEFINE_multi_string("gin_file", [], "gin config file(s), applied in order.")
flags.DEFINE_multi_string("gin_param", [], "gin binding(s), applied after the files, in order.")
flags.DEFINE_string("model_dir", None, "Directory for checkpoints, samples, summaries, scores.")
flags.DEFINE_enum("schedule", "train", list(runner.SCHEDULES), "What to do with model_dir.")
FLAGS = flags.FLAGS


def register_configurables():
    """Imports every module that defines gin configurables, so gin files can name them."""
    from compare_ssgan import architectures, datasets, distribute, training  # noqa: F401
    from compare_ssgan.gans import losses, model, penalties, rotation  # noqa: F401
    from compare_ssgan.gans import consistency, latent_transformation  # noqa: F401
    from compare_ssgan.eval import evaluator, feature_networks, probes  # noqa: F401


def parse_gin(gin_files, gin_params):
    register_configurables()
    for path in gin_files:
        if not os.path.isfile(path):
            raise UserError(f"--gin_file={path} does not exist (paths are relative to {os.getcwd()})")
    for path in gin_files:  # lets `include 'gin/...'` resolve from the project root
        directory = os.path.dirname(os.path.abspath(path))
        while directory != os.path.dirname(directory):
            gin.add_config_file_search_path(directory)
            directory = os.path.dirname(directory)
    try:
        gin.parse_config_files_and_bindings(gin_files, gin_params, finalize_config=False)
    except (ValueError, KeyError, SyntaxError, ImportError) as e:
        raise UserError(f"bad gin configuration: {e}\nCheck the spelling of the configurable and "
                        f"parameter names in your --gin_file/--gin_param.") from e


def _run(argv):
    del argv
    if not FLAGS.model_dir:
        raise UserError("--model_dir is required: the directory this run writes to (and resumes from)")
    parse_gin(FLAGS.gin_file, FLAGS.gin_param)
    logging.info("Code: %s", provenance.describe_short())
    from compare_ssgan import distribute

    strategy = distribute.make_strategy()
    runner.run(FLAGS.model_dir, FLAGS.schedule, strategy)


def main(argv):
    try:
        _run(argv)
    except UserError as e:
        logging.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
