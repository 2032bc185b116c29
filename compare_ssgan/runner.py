"""Schedules: what one invocation of main does with a model_dir."""
import contextlib
import os
import time

from absl import logging

from compare_ssgan import disk, locks
from compare_ssgan.errors import UserError

SCHEDULES = ("train", "eval_after_train", "continuous_eval", "probe")


def check_model_dir(model_dir):
    """Creates model_dir and proves it is writable before any expensive work starts."""
    disk.ensure_writable(model_dir, lambda why: (
        f"--model_dir={model_dir} is not writable ({why}). Choose a directory you can write to, "
        f"or fix its permissions."))


TRAINING_LOCK = ".training.lock"


@contextlib.contextmanager
def training_lock(model_dir):
    """Held by the process training in model_dir: a second trainer there (a re-run while the
    first still trains, e.g. one orphaned by a killed sweep) would overwrite its checkpoints."""
    try:
        f, _ = locks.acquire(os.path.join(model_dir, TRAINING_LOCK))
    except locks.Held as holder:
        raise UserError(f"{holder} is already training in --model_dir={model_dir}. Wait for it to "
                        f"finish or stop it; two trainers in one model_dir overwrite each other's "
                        f"checkpoints.") from None
    with f:
        yield


def set_aside_orphan_scores(model_dir, checkpoint_subdir, scores_file):
    """Scores in a model_dir without checkpoints come from an earlier training of it (e.g. a
    failed run exported without checkpoints, then retried): a run starting at step 0 must not
    inherit them. They are renamed, not deleted."""
    scores = os.path.join(model_dir, scores_file)
    if os.path.exists(os.path.join(model_dir, checkpoint_subdir, "checkpoint")) or not (
            os.path.exists(scores) and os.path.getsize(scores)):
        return None
    aside = f"{scores}.before-restart-{time.strftime('%Y%m%dT%H%M%S')}"
    os.replace(scores, aside)
    logging.warning("%s has scores but no checkpoints: they belong to an earlier training; moved "
                    "to %s before starting over.", scores, aside)
    return aside


def run(model_dir, schedule, strategy):
    if schedule not in SCHEDULES:
        raise UserError(f"unknown --schedule={schedule}; valid: {', '.join(SCHEDULES)}")
    check_model_dir(model_dir)
    from compare_ssgan import distribute, training

    trains = schedule in ("train", "eval_after_train")
    _, is_chief = distribute.worker_info(strategy)  # workers share the chief's model_dir
    from compare_ssgan.eval import probes, schedules, scores

    probe_after = schedule != "train" and probes.probe_options().enabled  # bad settings fail first
    with training_lock(model_dir) if trains and is_chief else contextlib.nullcontext():
        if trains and is_chief:
            set_aside_orphan_scores(model_dir, training.CHECKPOINT_SUBDIR, scores.SCORES_FILE)
        if schedule == "train":
            return training.Trainer(model_dir, strategy).train()

        trainer = training.Trainer(model_dir, strategy)
        if schedule == "probe":
            return probes.probe_run(trainer)
        if schedule == "eval_after_train":
            result = schedules.eval_after_train(trainer)
        else:
            result = schedules.continuous_eval(trainer)
        if probe_after:  # every checkpoint, once the scores are written
            probes.probe_run(trainer)
        return result
