"""When a training run's checkpoints are scored: after training (`eval_after_train`) or as they
appear, beside a trainer in another process (`continuous_eval`). The only evaluation code that
needs a training.Trainer: it trains, or watches one train, and builds the Evaluator from it."""
import os
import time

from absl import logging

from compare_ssgan import locks, runner
from compare_ssgan.errors import NaNLossError, UserError
from compare_ssgan.eval.evaluator import Evaluator, Run
from compare_ssgan.eval.options import continuous_eval_options
from compare_ssgan.eval.scores import SCORES_FILE, read_scores


def eval_after_train(trainer):
    """Trains (resuming if needed), then scores every checkpoint not yet scored.

    The evaluator (feature network, real statistics) is prepared first, so a bad evaluation
    config fails before hours of training. If training stops on a NaN loss, the checkpoints
    written before it are still scored, then the error is reported.
    """
    if not trainer.is_chief:
        return trainer.train()
    evaluator = Evaluator(Run.from_trainer(trainer))
    try:
        trainer.train()
    except NaNLossError as e:
        logging.warning("Training stopped on a non-finite loss; scoring the checkpoints it kept.")
        evaluator.evaluate_pending()
        evaluator.record_divergence(e)
        raise
    evaluator.evaluate_pending()
    return read_scores(trainer.model_dir)


def continuous_eval(trainer, timeout_secs=None, poll_secs=None):
    """Scores each checkpoint as it appears; stops once options.training_steps is scored.

    Waits `continuous_eval.timeout_secs` at most for a new checkpoint, then raises UserError.
    If the trainer stopped on a NaN loss (training.STOPPED_FILE, its lock free), it records the
    divergence as eval_after_train does and stops at once; if a trainer seen running (the holder
    of the training lock, on this host) is gone before the final step, it stops with an error.
    """
    default_timeout, default_poll = continuous_eval_options()
    timeout_secs = default_timeout if timeout_secs is None else timeout_secs
    poll_secs = default_poll if poll_secs is None else poll_secs
    final = trainer.opts.training_steps
    evaluator = Evaluator(Run.from_trainer(trainer))
    logging.info("Continuous evaluation of %s until step %d (%s).", trainer.checkpoint_dir, final,
                 evaluator.label)
    last_progress, trainer_seen = time.time(), False
    lock = os.path.join(trainer.model_dir, runner.TRAINING_LOCK)
    while True:
        # Read first: a trainer's checkpoints are all written before it stops or exits.
        stopped, alive = trainer.stopped(), locks.holder_alive(lock)
        trainer_seen = trainer_seen or bool(alive)
        if evaluator.evaluate_pending():
            last_progress = time.time()
        scored = evaluator.scored_steps()
        if final == 0 or any(step >= final for step in scored):
            logging.info("Step %d is scored; continuous evaluation done (%s).", final,
                         os.path.join(trainer.model_dir, SCORES_FILE))
            return read_scores(trainer.model_dir)
        if stopped:
            evaluator.record_divergence(NaNLossError(stopped.get("reason"), step=stopped.get("step")))
            raise NaNLossError(f"training in {trainer.model_dir} stopped: {stopped.get('reason')}\n"
                               f"continuous_eval scored the checkpoints it kept, recorded step "
                               f"{stopped.get('step')} as diverged in {SCORES_FILE}, and stops.",
                               step=stopped.get("step"))
        if trainer_seen and alive is False:
            raise UserError(f"the trainer of {trainer.model_dir} is gone (its process ended) before step "
                            f"{final}; last scored step: {max(scored, default=None)}. Resume it with its "
                            f"training command, then start continuous_eval again.")
        waited = time.time() - last_progress
        if waited >= timeout_secs:
            latest = max(scored, default=None)
            raise UserError(
                f"continuous_eval waited {waited:.0f}s (continuous_eval.timeout_secs={timeout_secs:g}) "
                f"without a new checkpoint in {trainer.checkpoint_dir}; last scored step: {latest}, "
                f"training_steps: {final}. Is training running (or did it stop with an error)? "
                f"Raise continuous_eval.timeout_secs to wait longer.")
        time.sleep(min(poll_secs, max(timeout_secs - waited, 0.01)))
