"""Tests for compare_ssgan.eval.metrics against independent numpy/scipy references."""

import warnings

import numpy as np
import pytest
from scipy import linalg, special, stats

from compare_ssgan.eval import metrics


# ---------------------------------------------------------------------------
# Reference implementations (deliberately written differently from the module)
# ---------------------------------------------------------------------------


def _ref_fid_sqrtm(x, y):
    """Textbook FID with scipy.linalg.sqrtm on the (non-symmetric) product."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm warns on singular products
        covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _ref_fid_nuclear(x, y):
    """Exact FID even for rank-deficient covariances.

    With s1 = P^T P and s2 = Q^T Q (P, Q centred, scaled data), the nonzero
    eigenvalues of s1 s2 are the squared singular values of P Q^T, so
    Tr sqrt(s1 s2) = ||P Q^T||_* (nuclear norm).
    """
    p = (x - x.mean(0)) / np.sqrt(x.shape[0] - 1)
    q = (y - y.mean(0)) / np.sqrt(y.shape[0] - 1)
    tr_sqrt = np.linalg.svd(p @ q.T, compute_uv=False).sum()
    return float(np.sum((x.mean(0) - y.mean(0)) ** 2) + np.sum(p * p) + np.sum(q * q) - 2 * tr_sqrt)


def _ref_mmd2_unbiased(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, via explicit off-diagonal masks."""
    d = x.shape[1]

    def k(a, b):
        return np.power(np.einsum("id,jd->ij", a, b) / d + 1.0, 3)

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    off_x = ~np.eye(len(x), dtype=bool)
    off_y = ~np.eye(len(y), dtype=bool)
    return kxx[off_x].mean() + kyy[off_y].mean() - 2 * kxy.mean()


def _ref_is(logits_split):
    """IS of one split with scipy.special.softmax + scipy.stats.entropy (KL)."""
    p = special.softmax(logits_split.astype(np.float64), axis=1)
    py = p.mean(axis=0)
    kl = np.array([stats.entropy(pi, py) for pi in p])
    return float(np.exp(kl.mean()))


def _rel(a, b):
    return abs(a - b) / abs(b)


# ---------------------------------------------------------------------------
# activation_statistics / FID
# ---------------------------------------------------------------------------


def test_activation_statistics_float64_and_unbiased():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 7)).astype(np.float32)
    mu, sigma = metrics.activation_statistics(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    assert mu.shape == (7,) and sigma.shape == (7, 7)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mu, x64.mean(0), rtol=1e-12, atol=1e-14)
    centred = x64 - x64.mean(0)
    np.testing.assert_allclose(sigma, centred.T @ centred / 49.0, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "make_pair",
    [
        lambda r: (r.normal(size=(600, 32)), r.normal(0.3, 1.5, size=(500, 32))),
        lambda r: (r.uniform(-1, 2, size=(400, 32)), r.exponential(1.0, size=(700, 32))),
        # correlated features: random linear mixing of Gaussians
        lambda r: (r.normal(size=(500, 32)) @ r.normal(size=(32, 32)),
                   r.standard_t(5, size=(500, 32)) @ r.normal(size=(32, 32)) + 2.0),
    ],
)
def test_fid_matches_sqrtm_reference(make_pair):
    x, y = make_pair(np.random.default_rng(1))
    got = metrics.fid_from_activations(x, y)
    ref = _ref_fid_sqrtm(x, y)
    assert ref > 1e-2  # distributions really differ
    assert _rel(got, ref) < 1e-6
    assert _rel(got, _ref_fid_nuclear(x, y)) < 1e-6
    # symmetric in its arguments
    assert _rel(metrics.fid_from_activations(y, x), got) < 1e-8


def test_fid_accepts_float32_activations():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    y = (rng.normal(size=(300, 16)) + 0.5).astype(np.float32)
    ref = _ref_fid_sqrtm(x.astype(np.float64), y.astype(np.float64))
    assert _rel(metrics.fid_from_activations(x, y), ref) < 1e-6


def test_fid_identical_sets_is_zero():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 64)) @ rng.normal(size=(64, 64)) * 10.0
    scale = np.trace(np.cov(x, rowvar=False))
    fid = metrics.fid_from_activations(x, x.copy())
    assert 0.0 <= fid < 1e-6 * scale
    # and a tiny perturbation gives a tiny but positive value
    fid_near = metrics.fid_from_activations(x, x + 1e-3 * rng.normal(size=x.shape))
    assert 0.0 < fid_near < 1e-3 * scale


@pytest.mark.parametrize("n1,n2", [(10, 12), (10, 10), (30, 1000), (5, 3)])
def test_fid_rank_deficient_covariances(n1, n2):
    rng = np.random.default_rng(3)
    d = 64
    x = rng.normal(size=(n1, d)) * rng.uniform(0.1, 3.0, size=d)
    y = rng.normal(size=(n2, d)) + 0.3
    got = metrics.fid_from_activations(x, y)
    assert np.isfinite(got) and got >= 0.0
    # exact reference (SVD / nuclear norm), well defined for singular covariances
    assert _rel(got, _ref_fid_nuclear(x, y)) < 1e-9
    # sqrtm reference is only approximately defined here (singular product)
    assert _rel(got, _ref_fid_sqrtm(x, y)) < 1e-6


def test_frechet_distance_singular_closed_form():
    # N(0, 0) vs N(0, I): sqrt(0 * I) = 0, so FID = Tr(I) = d.
    d = 20
    fid = metrics.frechet_distance(np.zeros(d), np.zeros((d, d)), np.zeros(d), np.eye(d))
    assert abs(fid - d) < 1e-12
    # Two rank-1 covariances along orthogonal axes: product is 0, FID = a + b.
    s1 = np.zeros((d, d))
    s1[0, 0] = 4.0
    s2 = np.zeros((d, d))
    s2[1, 1] = 9.0
    fid = metrics.frechet_distance(np.zeros(d), s1, np.ones(d), s2)
    assert abs(fid - (d + 13.0)) < 1e-12


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(4)
    d = 50
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d) + 1.0
    a, b = rng.uniform(0.01, 5.0, size=d), rng.uniform(0.01, 5.0, size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert _rel(got, expected) < 1e-10
    # Same spectra in a shared rotated basis (commuting, non-diagonal matrices).
    rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
    got_rot = metrics.frechet_distance(mu1, rot @ np.diag(a) @ rot.T, mu2, rot @ np.diag(b) @ rot.T)
    assert _rel(got_rot, expected) < 1e-8


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_fid_nonfinite_activations_raise(bad_value):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    x[[3, 7, 7, 20], [0, 1, 2, 5]] = bad_value  # 3 distinct bad rows
    with pytest.raises(ValueError, match=r"3 of 40 rows are non-finite"):
        metrics.fid_from_activations(x, y)
    with pytest.raises(ValueError, match=r"non-finite"):
        metrics.fid_from_activations(y, x)
    with pytest.raises(ValueError, match=r"3 of 40 rows"):
        metrics.activation_statistics(x)


def test_fid_bad_shapes_raise():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(40, 8))
    with pytest.raises(ValueError, match="2-D"):
        metrics.fid_from_activations(x[:, 0], x)
    with pytest.raises(ValueError, match="2-D"):
        metrics.fid_from_activations(x.reshape(40, 2, 4), x)
    with pytest.raises(ValueError, match="Feature dimensions differ"):
        metrics.fid_from_activations(x, x[:, :7])
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.fid_from_activations(x[:1], x)
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.activation_statistics(x[:1])


def test_frechet_distance_bad_statistics_raise():
    d = 4
    mu, eye = np.zeros(d), np.eye(d)
    with pytest.raises(ValueError, match="Feature dimensions differ"):
        metrics.frechet_distance(mu, eye, np.zeros(d + 1), np.eye(d + 1))
    with pytest.raises(ValueError, match="shape"):
        metrics.frechet_distance(mu, np.eye(d + 1), mu, eye)
    with pytest.raises(ValueError, match="not symmetric"):
        metrics.frechet_distance(mu, eye + np.triu(np.ones((d, d)), 1), mu, eye)
    with pytest.raises(ValueError, match="not positive semi-definite"):
        metrics.frechet_distance(mu, np.diag([1.0, 1.0, 1.0, -0.5]), mu, eye)
    with pytest.raises(ValueError, match="not positive semi-definite"):
        metrics.frechet_distance(mu, eye, mu, np.diag([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="non-finite"):
        metrics.frechet_distance(np.array([0.0, np.nan, 0.0, 0.0]), eye, mu, eye)
    bad = eye.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="1 of 4 rows are non-finite"):
        metrics.frechet_distance(mu, bad, mu, eye)


# ---------------------------------------------------------------------------
# KID
# ---------------------------------------------------------------------------


def test_kid_single_block_matches_reference():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 16))
    y = rng.normal(0.2, 1.2, size=(200, 16))
    mean, std = metrics.kernel_inception_distance(x, y)  # default block 1024 -> 1 block
    ref = _ref_mmd2_unbiased(x, y)
    assert ref > 0
    assert _rel(mean, ref) < 1e-10
    assert np.isnan(std)  # TF-GAN: standard error undefined for a single block


def test_kid_multi_block_matches_reference_loop():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(253, 12))
    y = rng.normal(0.1, 1.1, size=(171, 12))
    max_block = 60

    # Reference blocking, TF-GAN rule: ceil(max(n)/max_block) blocks; each set
    # split in order, the last (n mod n_blocks) blocks get one extra row.
    n_blocks = int(np.ceil(max(len(x), len(y)) / max_block))
    assert n_blocks == 5

    def sizes(n):
        base, extra = divmod(n, n_blocks)
        return [base] * (n_blocks - extra) + [base + 1] * extra

    assert sizes(len(x)) == [50, 50, 51, 51, 51]
    assert sizes(len(y)) == [34, 34, 34, 34, 35]
    ests = []
    rs = gs = 0
    for sr, sg in zip(sizes(len(x)), sizes(len(y))):
        ests.append(_ref_mmd2_unbiased(x[rs:rs + sr], y[gs:gs + sg]))
        rs, gs = rs + sr, gs + sg
    ests = np.array(ests)
    ref_mean = ests.mean()
    ref_std = np.sqrt(np.sum((ests - ref_mean) ** 2) / (n_blocks - 1) / n_blocks)

    mean, std = metrics.kernel_inception_distance(x, y, max_block_size=max_block)
    assert _rel(mean, ref_mean) < 1e-10
    assert _rel(std, ref_std) < 1e-8
    # Blocking is not the same as the single-block estimate on the full sets.
    assert _rel(mean, _ref_mmd2_unbiased(x, y)) > 1e-6


def test_kid_same_distribution_near_zero_and_shift_positive():
    rng = np.random.default_rng(9)
    d = 16
    x = rng.normal(size=(2000, d))
    y = rng.normal(size=(2000, d))
    mean0, std0 = metrics.kernel_inception_distance(x, y, max_block_size=500)
    assert np.isfinite(std0) and std0 > 0
    assert abs(mean0) < 4 * std0 + 1e-12

    means = []
    for shift in (0.25, 0.5, 1.0):
        m, s = metrics.kernel_inception_distance(x, y + shift, max_block_size=500)
        assert m > 10 * s  # clearly positive, not noise
        means.append(m)
    assert means[0] < means[1] < means[2]  # grows with the shift
    assert means[0] > 20 * abs(mean0)


def test_kid_bad_input_raises():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(50, 8))
    with pytest.raises(ValueError, match="Feature dimensions differ"):
        metrics.kernel_inception_distance(x, x[:, :4])
    with pytest.raises(ValueError, match="2-D"):
        metrics.kernel_inception_distance(x[0], x)
    bad = x.copy()
    bad[[1, 2], 0] = np.nan
    with pytest.raises(ValueError, match="2 of 50 rows are non-finite"):
        metrics.kernel_inception_distance(x, bad)
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.kernel_inception_distance(x[:1], x)
    # 3 real vs 3000 fake -> 3 blocks of 1 real sample: unbiased estimator undefined.
    with pytest.raises(ValueError, match=">= 2 samples per block"):
        metrics.kernel_inception_distance(x[:3], rng.normal(size=(3000, 8)))
    with pytest.raises(ValueError, match="max_block_size"):
        metrics.kernel_inception_distance(x, x, max_block_size=1)


# ---------------------------------------------------------------------------
# Inception Score
# ---------------------------------------------------------------------------


def test_is_uniform_logits_is_one():
    logits = np.full((200, 10), 3.0)  # every class equally likely for every sample
    mean, std = metrics.inception_score_from_logits(logits, num_splits=10)
    assert abs(mean - 1.0) < 1e-12 and abs(std) < 1e-12


@pytest.mark.parametrize("confidence", [50.0, 1e4])
def test_is_confident_even_classes_is_num_classes(confidence):
    k, n = 10, 1000
    labels = np.arange(n) % k  # every split of 100 holds 10 of each class
    logits = confidence * np.eye(k)[labels]
    mean, std = metrics.inception_score_from_logits(logits, num_splits=10)
    assert _rel(mean, k) < 1e-6
    assert abs(std) < 1e-6


def test_is_random_logits_matches_scipy_reference():
    rng = np.random.default_rng(12)
    logits = (rng.normal(size=(1000, 20)) * 3.0).astype(np.float32)
    mean, std = metrics.inception_score_from_logits(logits, num_splits=10)
    per_split = [_ref_is(s) for s in logits.reshape(10, 100, 20)]
    assert 1.5 < np.mean(per_split) < 20  # non-trivial score
    assert _rel(mean, np.mean(per_split)) < 1e-6
    assert _rel(std, np.std(per_split)) < 1e-6


def test_is_uneven_splits_use_all_samples():
    rng = np.random.default_rng(13)
    logits = rng.normal(size=(23, 5)) * 2.0
    mean, std = metrics.inception_score_from_logits(logits, num_splits=2)
    ref = [_ref_is(logits[:12]), _ref_is(logits[12:])]  # no remainder dropped
    assert _rel(mean, np.mean(ref)) < 1e-10
    assert _rel(std, np.std(ref)) < 1e-10


def test_is_marginal_is_per_split():
    k = 5
    labels = np.repeat(np.arange(k), 40)  # sorted: each of 5 splits is one class
    logits = 50.0 * np.eye(k)[labels]
    whole, whole_std = metrics.inception_score_from_logits(logits, num_splits=1)
    assert _rel(whole, k) < 1e-9 and whole_std == 0.0
    split_mean, split_std = metrics.inception_score_from_logits(logits, num_splits=k)
    assert abs(split_mean - 1.0) < 1e-9 and abs(split_std) < 1e-9


def test_is_std_over_splits():
    k = 8
    uniform = np.zeros((80, k))
    confident = 50.0 * np.eye(k)[np.arange(80) % k]
    logits = np.concatenate([uniform, confident])
    mean, std = metrics.inception_score_from_logits(logits, num_splits=2)
    assert abs(mean - (1 + k) / 2) < 1e-9
    assert abs(std - (k - 1) / 2) < 1e-9


def test_is_bad_input_raises():
    rng = np.random.default_rng(14)
    logits = rng.normal(size=(40, 10))
    with pytest.raises(ValueError, match="2-D"):
        metrics.inception_score_from_logits(logits[:, 0])
    bad = logits.copy()
    bad[5, 3] = np.inf
    with pytest.raises(ValueError, match="1 of 40 rows are non-finite"):
        metrics.inception_score_from_logits(bad, num_splits=2)
    with pytest.raises(ValueError, match="2 samples per split"):
        metrics.inception_score_from_logits(logits[:15], num_splits=10)
    with pytest.raises(ValueError, match="num_splits"):
        metrics.inception_score_from_logits(logits, num_splits=0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.inception_score_from_logits(logits[:1], num_splits=1)
