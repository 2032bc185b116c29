"""Schedules: what one invocation of main does with a model_dir."""
import os
import tempfile

from compare_ssgan.errors import UserError

SCHEDULES = ("train", "eval_after_train", "continuous_eval")


def check_model_dir(model_dir):
    """Creates model_dir and proves it is writable before any expensive work starts."""
    try:
        os.makedirs(model_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=model_dir, prefix=".write_test"):
            pass
    except OSError as e:
        raise UserError(f"--model_dir={model_dir} is not writable ({e.strerror}). Choose a directory "
                        f"you can write to, or fix its permissions.") from e


def run(model_dir, schedule, strategy):
    if schedule not in SCHEDULES:
        raise UserError(f"unknown --schedule={schedule}; valid: {', '.join(SCHEDULES)}")
    check_model_dir(model_dir)
    from compare_ssgan import training

    if schedule == "train":
        return training.Trainer(model_dir, strategy).train()
    from compare_ssgan.eval import evaluator

    trainer = training.Trainer(model_dir, strategy)
    if schedule == "eval_after_train":
        return evaluator.eval_after_train(trainer)
    return evaluator.continuous_eval(trainer)
