"""Entry point: python -m compare_ssgan.main --gin_file=... --model_dir=... [--schedule=train].

--gin_file and --gin_param repeat; later ones override earlier ones. User mistakes (bad gin
binding, unknown names, missing data, unwritable model_dir, corrupted checkpoint, NaN loss)
end with one message naming the fix and exit code 2, not a traceback.
"""

from compare_ssgan import cli

cli.quiet_tensorflow()  # before anything imports TensorFlow

from absl import app, flags, logging  # noqa: E402

from compare_ssgan import provenance, runner  # noqa: E402  (provenance first reads the code version)
from compare_ssgan.cli import parse_gin, register_configurables  # noqa: E402,F401  (main.parse_gin)
from compare_ssgan.errors import UserError  # noqa: E402

flags.DEFINE_multi_string("gin_file", [], "gin config file(s), applied in order.")
flags.DEFINE_multi_string("gin_param", [], "gin binding(s), applied after the files, in order.")
flags.DEFINE_string("model_dir", None, "Directory for checkpoints, samples, summaries, scores.")
flags.DEFINE_enum("schedule", "train", list(runner.SCHEDULES), "What to do with model_dir.")
FLAGS = flags.FLAGS


def _run(argv):
    del argv
    if not FLAGS.model_dir:
        raise UserError("--model_dir is required: the directory this run writes to (and resumes from)")
    parse_gin(FLAGS.gin_file, FLAGS.gin_param)
    logging.info("Code: %s", provenance.describe_short())
    from compare_ssgan import distribute

    strategy = distribute.make_strategy()
    runner.run(FLAGS.model_dir, FLAGS.schedule, strategy)


main = cli.exit_on_user_error(_run)


if __name__ == "__main__":
    app.run(main)
