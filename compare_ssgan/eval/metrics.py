"""GAN evaluation metrics computed from classifier activations / logits.

This module holds the *math* only: every function takes precomputed feature
activations (e.g. Inception pool_3) or classifier logits as arrays and returns
Python floats. Running the feature network is someone else's job.

The definitions follow TF-GAN (``tensorflow_gan/python/eval/classifier_metrics.py``),
which can no longer be imported under TF >= 2.16, so we re-derive them here in
numpy float64 / scipy:

* FID -- Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
  Converge to a Local Nash Equilibrium" (arXiv:1706.08500).
* KID -- Binkowski et al. 2018, "Demystifying MMD GANs" (arXiv:1801.01401),
  with TF-GAN's block estimator (Zaremba et al. 2013, arXiv:1307.1954).
* IS  -- Salimans et al. 2016, "Improved Techniques for Training GANs"
  (arXiv:1606.03498).

All inputs are validated and bad input raises ``ValueError``; no function
returns a sentinel value in place of a metric. (The one ``nan`` is KID's
standard error when there is only one block, where it is undefined -- as in
TF-GAN; the KID mean is still valid.)
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = [
    "activation_statistics",
    "frechet_distance",
    "fid_from_activations",
    "kernel_inception_distance",
    "inception_score_from_logits",
]

_EPS = np.finfo(np.float64).eps
# Relative tolerances used when checking user-supplied covariances. They are
# loose on purpose so float32-derived covariances pass; they only catch inputs
# that are clearly not covariance matrices.
_SYMMETRY_RTOL = 1e-6
_PSD_RTOL = 1e-5


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


def _as_float64_array(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be convertible to a float64 array: {e}") from e
    return arr


def _check_2d(x, name: str, min_rows: int = 2) -> np.ndarray:
    """Returns `x` as a finite float64 [num_samples, num_features] array."""
    arr = _as_float64_array(x, name)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D [num_samples, num_features], got shape {arr.shape}.")
    n, d = arr.shape
    if d < 1:
        raise ValueError(f"{name} must have at least one feature column, got shape {arr.shape}.")
    if n < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} samples, got {n}.")
    finite_rows = np.isfinite(arr).all(axis=1)
    if not finite_rows.all():
        bad = int(n - np.count_nonzero(finite_rows))
        raise ValueError(
            f"{name} contains NaN/inf: {bad} of {n} rows are non-finite.")
    return arr


def _check_same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"Feature dimensions differ: {name_a} has {a.shape[1]}, "
            f"{name_b} has {b.shape[1]}.")


def _check_mean(mu, name: str) -> np.ndarray:
    arr = _as_float64_array(mu, name)
    if arr.ndim != 1 or arr.shape[0] < 1:
        raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"{name} contains NaN/inf: {bad} of {arr.shape[0]} entries are non-finite.")
    return arr


def _check_cov(sigma, name: str, dim: int) -> np.ndarray:
    """Returns a symmetrised float64 covariance, raising if it is not one."""
    arr = _as_float64_array(sigma, name)
    if arr.ndim != 2 or arr.shape != (dim, dim):
        raise ValueError(f"{name} must have shape ({dim}, {dim}) to match the mean, got {arr.shape}.")
    finite_rows = np.isfinite(arr).all(axis=1)
    if not finite_rows.all():
        bad = int(dim - np.count_nonzero(finite_rows))
        raise ValueError(f"{name} contains NaN/inf: {bad} of {dim} rows are non-finite.")
    scale = float(np.max(np.abs(arr))) if arr.size else 0.0
    asym = float(np.max(np.abs(arr - arr.T))) if arr.size else 0.0
    if asym > _SYMMETRY_RTOL * scale:
        raise ValueError(
            f"{name} is not symmetric (max |S - S^T| = {asym:.3e}, max |S| = {scale:.3e}).")
    return 0.5 * (arr + arr.T)


# ---------------------------------------------------------------------------
# FID
# ---------------------------------------------------------------------------


def activation_statistics(activations):
    """Mean and covariance of a [num_samples, num_features] activation matrix.

    These are the Gaussian statistics FID (Heusel et al. 2017) compares. Computed
    in float64 with the unbiased (ddof=1) covariance, i.e. ``np.cov`` with
    ``rowvar=False`` -- the same normalisation TF-GAN uses.

    Returns:
        (mu, sigma): float64 arrays of shape [d] and [d, d].
    """
    acts = _check_2d(activations, "activations")
    mu = acts.mean(axis=0)
    sigma = np.atleast_2d(np.cov(acts, rowvar=False))
    return mu, sigma


def _clip_roundoff(w: np.ndarray, dim: int) -> np.ndarray:
    """Zeroes eigenvalues at round-off level (or negative) relative to the largest.

    For rank-deficient matrices the "zero" eigenvalues come out as +-1e-16 * scale;
    their square roots (~1e-8 * sqrt(scale)) would otherwise leak into the trace.
    """
    w_max = float(max(w.max(), 0.0))
    return np.where(w > dim * _EPS * w_max, w, 0.0)


def _psd_eigh(sigma: np.ndarray, name: str):
    """eigh of a covariance; raises if it is clearly (beyond round-off) not PSD."""
    w, v = np.linalg.eigh(sigma)
    w_max = float(max(w.max(), 0.0))
    if w.min() < -_PSD_RTOL * max(w_max, np.finfo(np.float64).tiny):
        raise ValueError(
            f"{name} is not positive semi-definite (smallest eigenvalue {w.min():.3e}, "
            f"largest {w_max:.3e}).")
    return _clip_roundoff(w, sigma.shape[0]), v


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr(sqrt(sigma1 @ sigma2)) for symmetric PSD sigma1, sigma2.

    sigma1 @ sigma2 is not symmetric, so instead of a general ``sqrtm`` we use
    (as TF-GAN does) that with A = sqrt(sigma1), sigma1 sigma2 = A (A sigma2) has
    the same eigenvalues as A sigma2 A, which is symmetric PSD. Hence
    Tr(sqrt(sigma1 sigma2)) = sum_i sqrt(lambda_i(A sigma2 A)). Everything is done
    with ``eigh`` on symmetric matrices, so there are no complex intermediates and
    singular / rank-deficient covariances (fewer samples than dimensions) are
    fine. Eigenvalues at round-off level are clipped to zero.
    """
    w1, v1 = _psd_eigh(sigma1, "sigma1")
    _psd_eigh(sigma2, "sigma2")  # validation only
    sqrt1 = (v1 * np.sqrt(w1)) @ v1.T
    m = sqrt1 @ sigma2 @ sqrt1
    m = 0.5 * (m + m.T)
    e = _clip_roundoff(np.linalg.eigvalsh(m), m.shape[0])
    return float(np.sum(np.sqrt(e)))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017).

        d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2))

    The matrix-square-root term is computed with the symmetric eigen formulation
    described in `_trace_sqrt_product` rather than ``scipy.linalg.sqrtm``; it
    never produces complex values and stays accurate for singular covariances.
    Covariances that are clearly not symmetric PSD (beyond round-off) raise
    ``ValueError`` -- the analogue of a large imaginary part from ``sqrtm``. The
    result is clamped at 0 to absorb round-off (it is >= 0 mathematically).
    """
    mu1 = _check_mean(mu1, "mu1")
    mu2 = _check_mean(mu2, "mu2")
    if mu1.shape != mu2.shape:
        raise ValueError(f"Feature dimensions differ: mu1 has {mu1.shape[0]}, mu2 has {mu2.shape[0]}.")
    d = mu1.shape[0]
    sigma1 = _check_cov(sigma1, "sigma1", d)
    sigma2 = _check_cov(sigma2, "sigma2", d)

    diff = mu1 - mu2
    mean_term = float(diff @ diff)
    cov_term = float(np.trace(sigma1) + np.trace(sigma2)) - 2.0 * _trace_sqrt_product(sigma1, sigma2)
    fid = mean_term + cov_term
    if not np.isfinite(fid):
        raise ValueError(f"Frechet distance is non-finite ({fid}); inputs overflow float64.")
    return max(fid, 0.0)


def fid_from_activations(real_acts, fake_acts) -> float:
    """FID between two [num_samples, d] activation sets (Heusel et al. 2017).

    Note the sample FID is biased and the bias depends on the sample size, so
    only compare FIDs computed with the same number of samples.
    """
    real = _check_2d(real_acts, "real_acts")
    fake = _check_2d(fake_acts, "fake_acts")
    _check_same_dim(real, fake, "real_acts", "fake_acts")
    mu1, sigma1 = activation_statistics(real)
    mu2, sigma2 = activation_statistics(fake)
    return frechet_distance(mu1, sigma1, mu2, sigma2)


# ---------------------------------------------------------------------------
# KID
# ---------------------------------------------------------------------------


def _block_bounds(n: int, n_blocks: int) -> np.ndarray:
    """Boundaries splitting n rows into n_blocks contiguous near-equal blocks.

    As in TF-GAN: the first blocks get floor(n / n_blocks) rows, the last
    (n mod n_blocks) blocks get one more.
    """
    base = n // n_blocks
    n_plus_one = n - base * n_blocks
    sizes = np.array([base] * (n_blocks - n_plus_one) + [base + 1] * n_plus_one, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(sizes)])


def _cubic_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _unbiased_mmd2(r: np.ndarray, g: np.ndarray) -> float:
    """Unbiased MMD^2 estimate with the cubic polynomial kernel for one block."""
    m, n = r.shape[0], g.shape[0]
    k_rr = _cubic_kernel(r, r)
    k_gg = _cubic_kernel(g, g)
    k_rg = _cubic_kernel(r, g)
    return float((k_rr.sum() - np.trace(k_rr)) / (m * (m - 1))
               + (k_gg.sum() - np.trace(k_gg)) / (n * (n - 1))
               - 2.0 * k_rg.mean())


def kernel_inception_distance(real_acts, fake_acts, max_block_size: int = 1024):
    """KID: unbiased MMD^2 with kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018).

    Unlike FID, the estimator is unbiased, so values from different sample
    sizes are comparable. Mirrors TF-GAN's
    ``kernel_classifier_distance_and_std_from_activations``:

    * n_blocks = ceil(max(n_real, n_fake) / max_block_size). Each set is split
      *in order* into n_blocks contiguous blocks of near-equal size (sizes differ
      by at most one; the larger blocks come last). Block i pairs real block i
      with fake block i, so with unequal set sizes the blocks have different
      real/fake counts. Inputs are assumed to be in random order.
    * The unbiased MMD^2 is computed within each block (off-diagonal means for
      k(r, r') and k(g, g'), full mean for k(r, g)).

    Returns:
        (mean, std): mean of the per-block estimates, and TF-GAN's "std", which is
        the standard error of that mean: sqrt(var_ddof1(blocks) / n_blocks). With a
        single block the standard error is undefined and, as in TF-GAN, ``nan`` is
        returned for it (the mean is still valid).

    Raises:
        ValueError: on bad input, or if some block would have < 2 real or fake
            samples (the unbiased estimator would divide by zero).
    """
    real = _check_2d(real_acts, "real_acts")
    fake = _check_2d(fake_acts, "fake_acts")
    _check_same_dim(real, fake, "real_acts", "fake_acts")
    if isinstance(max_block_size, bool) or int(max_block_size) != max_block_size or max_block_size < 2:
        raise ValueError(f"max_block_size must be an integer >= 2, got {max_block_size!r}.")
    max_block_size = int(max_block_size)

    n_r, n_g = real.shape[0], fake.shape[0]
    n_blocks = -(-max(n_r, n_g) // max_block_size)  # ceil division
    if min(n_r, n_g) // n_blocks < 2:
        raise ValueError(
            f"KID with {n_blocks} blocks needs >= 2 samples per block from each set; "
            f"got n_real={n_r}, n_fake={n_g} (max_block_size={max_block_size}). "
            "Use more samples or a larger max_block_size.")
    bounds_r = _block_bounds(n_r, n_blocks)
    bounds_g = _block_bounds(n_g, n_blocks)

    ests = np.array([
        _unbiased_mmd2(real[bounds_r[i]:bounds_r[i + 1]], fake[bounds_g[i]:bounds_g[i + 1]])
        for i in range(n_blocks)
    ])
    mean = float(ests.mean())
    if n_blocks <= 1:
        std = float("nan")
    else:
        std = float(np.sqrt(ests.var(ddof=1) / n_blocks))
    return mean, std


# ---------------------------------------------------------------------------
# Inception Score
# ---------------------------------------------------------------------------


def inception_score_from_logits(logits, num_splits: int = 10):
    """Inception Score exp(E_x KL(p(y|x) || p(y))) from logits (Salimans et al. 2016).

    Computed in float64 from log-softmax, with log p(y) = logsumexp_x log p(y|x)
    - log n, so very confident (saturated) logits give no 0 * log(0) NaNs.

    The samples are split in order into ``num_splits`` contiguous near-equal
    parts (``np.array_split``; unlike the original code no remainder is
    dropped); p(y) is the marginal *within* each split, as in Salimans et al.
    ``num_splits=1`` gives TF-GAN's ``classifier_score_from_logits`` (no splits).

    Returns:
        (mean, std) over splits, std with ddof=0 as in the original implementation.
    """
    if isinstance(num_splits, bool) or int(num_splits) != num_splits or num_splits < 1:
        raise ValueError(f"num_splits must be a positive integer, got {num_splits!r}.")
    num_splits = int(num_splits)
    x = _check_2d(logits, "logits", min_rows=2)
    n = x.shape[0]
    if n < 2 * num_splits:
        raise ValueError(
            f"inception score with num_splits={num_splits} needs >= 2 samples per split "
            f"(>= {2 * num_splits} logits rows), got {n}.")

    log_p = special.log_softmax(x, axis=1)
    scores = []
    for part in np.array_split(log_p, num_splits, axis=0):
        log_py = special.logsumexp(part, axis=0) - np.log(part.shape[0])
        kl = np.sum(np.exp(part) * (part - log_py), axis=1)
        scores.append(np.exp(np.mean(kl)))
    scores = np.asarray(scores)
    return float(scores.mean()), float(scores.std())
