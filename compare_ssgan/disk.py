"""A full disk while a run writes: one message saying what was kept and that resuming is safe.

Every file a run writes survives a failed write: checkpoints are committed by the
CheckpointManager's state file only after all their files are written, the config and sample
grids are written to a temporary file and renamed, and a score line is appended whole (a torn
one is skipped on reading and never merges with the next, see compare_ssgan.jsonl).
"""
import contextlib
import errno
import os
import tempfile

import tensorflow as tf

from compare_ssgan.errors import UserError


def is_no_space(error):
    """ENOSPC, as an OSError or as the ResourceExhaustedError tf's file system raises for it."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(error, (OSError, tf.errors.OpError)) and (
        "No space left on device" in str(error) or "Disk quota exceeded" in str(error))


@contextlib.contextmanager
def no_space_is_a_user_error(what, where):
    """Turns running out of disk space while writing `what` (into `where`) into a UserError."""
    try:
        yield
    except (OSError, tf.errors.OpError) as e:
        if not is_no_space(e):
            raise
        raise UserError(
            f"no space left on the device holding {where} while writing {what}. Nothing written "
            f"before is corrupted: the last complete checkpoint, the config, the sample grids and "
            f"the scores are intact (a half-written file is a temporary one, or a torn last line "
            f"of scores.jsonl that is skipped). Free some space, then run the same command "
            f"again: it resumes from the last checkpoint.") from e


def ensure_writable(path, message):
    """Creates directory `path` and proves it writable before expensive work starts; otherwise a
    UserError with message(strerror) naming the fix."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_test"):
            pass
    except OSError as e:
        raise UserError(message(e.strerror or str(e))) from e
    return path
