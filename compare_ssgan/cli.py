"""What every command-line entry point shares: a quiet TensorFlow start and one `error:` line.

On a machine without a GPU, importing TensorFlow and initialising its devices prints C++ log
lines that read like failures to a newcomer ("failed call to cuInit", "Could not find cuda
drivers", oneDNN notices). Most are filtered by TF_CPP_MIN_LOG_LEVEL, but the lines Abseil
writes before its logging is initialised ignore it (abseil/abseil-cpp#1718), so
`quiet_tensorflow` imports TensorFlow and initialises its devices with the C++ stderr captured,
then re-prints every captured line except those known notices. A user who sets
TF_CPP_MIN_LOG_LEVEL gets TensorFlow's own behaviour untouched. Our progress lines (absl
Python logging) are not affected.

Call it before anything imports TensorFlow: `from compare_ssgan import cli; cli.quiet_tensorflow()`.
"""
import os
import sys
import tempfile

# Start-up notices that say nothing is wrong (a CPU-only machine, oneDNN, plugin registration).
NOTICES = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "Could not find cuda drivers on your machine",
    "failed call to cuInit",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "Unable to register cuDNN factory", "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory", "computation placer already registered",
    "TF-TRT Warning: Could not find TensorRT",
)


def quiet_tensorflow():
    """Imports TensorFlow and initialises its devices without the start-up notices."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # INFO and WARNING of TensorFlow's C++ code
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # initialises CUDA (cuInit) now, while captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        for line in captured.read().decode("utf-8", "replace").splitlines():
            if line.strip() and not any(notice in line for notice in NOTICES):
                print(line, file=sys.stderr)


def register_configurables():
    """Imports every module that defines gin configurables, so gin files can name them."""
    from compare_ssgan import architectures, datasets, distribute, training  # noqa: F401
    from compare_ssgan.gans import losses, model, penalties, rotation  # noqa: F401
    from compare_ssgan.gans import consistency, latent_transformation  # noqa: F401
    from compare_ssgan.eval import feature_networks, options, probes  # noqa: F401


def parse_gin(gin_files, gin_params):
    import gin

    from compare_ssgan.errors import UserError

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


def exit_on_user_error(run):
    """absl `main` calling `run(argv)`: a UserError ends in one `error:` line and exit code 2."""
    from absl import logging

    from compare_ssgan.errors import UserError

    def main(argv):
        try:
            run(argv)
        except UserError as e:
            logging.error("%s", e)
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return main
