"""Finding a run's checkpoints and telling damaged ones from ones a changed config cannot load.

A checkpoint is damaged when its own files cannot be read back: a missing or garbage .index, a
truncated or bit-flipped .data (tf's bundle format stores a CRC32C per tensor, checked on
every read). That is a property of the files alone, so it is checked with a checkpoint reader,
independently of the model: a checkpoint whose every tensor reads back but does not fit the
model was written under another gin config, which is the user's to fix, not damage.

Damaged checkpoints are moved (never deleted) into `<checkpoint_dir>/damaged-<time>/`, and the
`checkpoint` state file is rewritten to list the ones that remain, so training resumes from the
newest intact one (as Orbax and tf.estimator keep the last good state).
"""
import glob
import os
import re
import shutil
import time

import tensorflow as tf
from absl import logging

STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's state file
_NUMBERED = re.compile(r"-(\d+)$")


def step_of(prefix):
    """The step in a checkpoint prefix's name (.../ckpt-<step>), or None."""
    match = _NUMBERED.search(prefix)
    return int(match.group(1)) if match else None


def listed(checkpoint_dir):
    """([(step, prefix)] oldest first, problem): the checkpoints the state file lists, or, if the
    state file is missing, unreadable or empty (`problem` says so), every ckpt-<step>.index."""
    state_path = os.path.join(checkpoint_dir, STATE_FILE)
    problem, prefixes = None, []
    if os.path.exists(state_path):
        try:
            state = tf.train.get_checkpoint_state(checkpoint_dir)
            prefixes = list(state.all_model_checkpoint_paths) if state else []
            if not prefixes:
                problem = f"{state_path} lists no checkpoint"
        except (ValueError, tf.errors.OpError) as e:  # garbage: text_format's ParseError is a ValueError
            problem = f"{state_path} is unreadable ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
    elif glob.glob(os.path.join(checkpoint_dir, "ckpt-*.index")):
        problem = f"{state_path} is missing"
    if problem:
        prefixes = [p[:-len(".index")] for p in glob.glob(os.path.join(checkpoint_dir, "ckpt-*.index"))]
    found = []
    for prefix in prefixes:  # tf joins the state file's relative paths to checkpoint_dir
        if step_of(prefix) is None:
            logging.warning("Skipping checkpoint %s: its name does not end in -<step>.", prefix)
        else:
            found.append((step_of(prefix), prefix))
    return sorted(set(found)), problem


def damage(prefix):
    """Why the checkpoint at `prefix` cannot be read back (None if every tensor reads)."""
    if not os.path.exists(prefix + ".index"):
        return f"{os.path.basename(prefix)}.index is missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as e:  # noqa: BLE001  (the reader raises OpError, ValueError, IndexError, ...)
        return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
    return None


def set_aside(checkpoint_dir, prefixes, state_file_too=False):
    """Moves the files of `prefixes` (and the state file, if asked) into a new
    `damaged-<time>/` folder of checkpoint_dir; returns that folder."""
    folder = os.path.join(checkpoint_dir, f"damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    os.makedirs(folder, exist_ok=True)
    paths = [p for prefix in prefixes for p in glob.glob(glob.escape(prefix) + ".*")]
    if state_file_too:
        paths.append(os.path.join(checkpoint_dir, STATE_FILE))
    for path in paths:
        if os.path.exists(path):
            shutil.move(path, os.path.join(folder, os.path.basename(path)))
    return folder


def write_state(checkpoint_dir, prefixes):
    """Rewrites the state file (atomically) to list `prefixes`, oldest first, the last being the
    latest; by file name, as CheckpointManager writes it, so the run directory stays movable."""
    names = [os.path.basename(p) for p in prefixes]
    # Timestamps too: CheckpointManager only manages (and lists again) checkpoints that have one.
    times = [os.path.getmtime(os.path.join(checkpoint_dir, name + ".index")) for name in names]
    text = (f'model_checkpoint_path: "{names[-1]}"\n'
            + "".join(f'all_model_checkpoint_paths: "{name}"\n' for name in names)
            + "".join(f"all_model_checkpoint_timestamps: {t!r}\n" for t in times))
    tmp = os.path.join(checkpoint_dir, f".{STATE_FILE}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(checkpoint_dir, STATE_FILE))
