"""The gin options of evaluation (`evaluation.*`, `continuous_eval.*`), checked when read so a
bad evaluation config fails before training starts, not after it ends."""
import dataclasses

import gin

from compare_ssgan.errors import UserError
from compare_ssgan.eval import feature_networks


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    feature_network: str
    num_samples: int
    num_fake_sets: int
    eval_seed: int
    real_split: str | None
    sample_batch_size: int
    kid_max_block_size: int
    inception_score_splits: int


@gin.configurable("evaluation")
def evaluation_options(feature_network="inception", num_samples=10_000, num_fake_sets=3, eval_seed=0,
                       real_split=None, sample_batch_size=100, kid_max_block_size=1024,
                       inception_score_splits=10):
    """How checkpoints are scored.

    feature_network: 'inception' (the papers' FID; see `inception.path`) or 'cifar10_classifier'
        (offline; not comparable to papers' FID).
    num_samples: generated images per fake set, and real images (SS-GAN: 10,000).
    num_fake_sets: fake sets averaged (compare_gan used 3); mean and std are reported.
    eval_seed: seeds the latents and labels of every fake set (the same for every checkpoint).
    real_split: split for the real statistics; None = the dataset's evaluation split ('test').
    kid_max_block_size, inception_score_splits: as TF-GAN (1024) and Salimans et al. (10).
    """
    if feature_network not in feature_networks.names():
        raise UserError(f"unknown feature network {feature_network!r}; valid names: "
                        f"{', '.join(feature_networks.names())} (set evaluation.feature_network in gin)")
    num_samples, num_fake_sets = int(num_samples), int(num_fake_sets)
    inception_score_splits = int(inception_score_splits)
    if num_fake_sets < 1 or sample_batch_size < 1:
        raise UserError("evaluation.num_fake_sets and evaluation.sample_batch_size must be >= 1")
    if inception_score_splits < 1 or num_samples < max(2 * inception_score_splits, 4):
        raise UserError(f"evaluation.num_samples={num_samples} is too small: the Inception Score "
                        f"with evaluation.inception_score_splits={inception_score_splits} needs at "
                        f"least {max(2 * inception_score_splits, 4)} samples")
    if int(kid_max_block_size) < 2:
        raise UserError("evaluation.kid_max_block_size must be >= 2")
    return EvalOptions(str(feature_network), num_samples, num_fake_sets, int(eval_seed),
                       None if real_split is None else str(real_split), int(sample_batch_size),
                       int(kid_max_block_size), inception_score_splits)


@gin.configurable("continuous_eval")
def continuous_eval_options(timeout_secs=3600.0, poll_secs=10.0):
    """continuous_eval gives up (with an error) after `timeout_secs` without a new checkpoint,
    checking for one every `poll_secs`."""
    if timeout_secs < 0 or poll_secs <= 0:
        raise UserError("continuous_eval.timeout_secs must be >= 0 and poll_secs > 0")
    return float(timeout_secs), float(poll_secs)
