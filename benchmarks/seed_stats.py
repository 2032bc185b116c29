"""Statistics across seeds for the tables: a summary per model and a test between two models.

Per model: n, mean, sample std (ddof=1), best (the papers' "best of n"). Between two models of
a row: Welch's two-sided t-test (unequal variances) and the two-sided Mann-Whitney U test, both
from scipy.stats, and a percentile bootstrap confidence interval of the difference of means
(scipy.stats.bootstrap, each model's seeds resampled independently, a fixed seed so tables are
reproducible). With 3 seeds per model these are coarse: Mann-Whitney's smallest two-sided p is
0.1, and the bootstrap interval is only as wide as the few values allow.
"""
import dataclasses
import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0


@dataclasses.dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    std: float | None  # None with fewer than 2 values
    best: float | None


@dataclasses.dataclass(frozen=True)
class Comparison:
    """`b` against `a`: difference = mean(b) - mean(a); None where a test needs more values."""
    difference: float
    ci: tuple | None
    welch_p: float | None
    mannwhitney_p: float | None


def summarize(values, lower_is_better=True):
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return Summary(0, None, None, None)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    best = float(values.min() if lower_is_better else values.max())
    return Summary(len(values), float(values.mean()), std, best)


def common_steps(runs):
    """{run: {step: value}} -> {step: [each run's value]} at the steps every run reached: a curve
    averaging whichever seeds reached a step would jump where an unfinished or diverged seed stops."""
    steps = set.intersection(*(set(values) for values in runs.values())) if runs else set()
    return {step: [values[step] for values in runs.values()] for step in sorted(steps)}


def _finite(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _mean_difference(b, a, axis):
    return np.mean(b, axis=axis) - np.mean(a, axis=axis)


def compare(a, b):
    """Comparison of `b` with `a` (two lists of per-seed values), or None if either is empty.
    The tests need at least 2 values per model; Welch's t is undefined when both spreads are 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not len(a) or not len(b):
        return None
    difference = float(b.mean() - a.mean())
    if len(a) < 2 or len(b) < 2:
        return Comparison(difference, None, None, None)
    welch = _finite(stats.ttest_ind(b, a, equal_var=False).pvalue)
    mannwhitney = _finite(stats.mannwhitneyu(b, a, alternative="two-sided").pvalue)
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # every resample has the same difference
        ci = (difference, difference)
    else:
        interval = stats.bootstrap((b, a), _mean_difference, n_resamples=BOOTSTRAP_RESAMPLES,
                                   confidence_level=CONFIDENCE, method="percentile",
                                   rng=np.random.default_rng(BOOTSTRAP_SEED)).confidence_interval
        ci = (float(interval.low), float(interval.high))
    return Comparison(difference, ci, welch, mannwhitney)


def _p_text(p):
    return "—" if p is None else f"{p:.2g}" if p < 0.01 else f"{p:.2f}"


def comparison_texts(comparison, digits):
    """A comparison as table cells: [Δ with its CI, Welch p, Mann-Whitney p] ("—" where undefined)."""
    if comparison is None:
        return ["—", "—", "—"]
    delta = f"{comparison.difference:+.{digits}f}"
    if comparison.ci is not None:
        delta += f" [{comparison.ci[0]:+.{digits}f}, {comparison.ci[1]:+.{digits}f}]"
    return [delta, _p_text(comparison.welch_p), _p_text(comparison.mannwhitney_p)]
