"""Metrics against independent NumPy/SciPy computations on fixed random embeddings."""

import numpy as np
import pytest
import scipy.linalg
import scipy.special

from foleyflow.errors import InputError
from foleyflow.evaluation import metrics
from foleyflow.evaluation.bootstrap import bootstrap_ci, mean_ci


def _embeddings(seed, n=60, d=8, shift=0.0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d))
    return rng.normal(size=(n, d)) @ mixing + shift


def _frechet_scipy(x, y, eps=1e-6):
    # The toolbox's formula: scipy's sqrtm of the product, eps*I retry, real part.
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(root).all():
        offset = np.eye(s1.shape[0]) * eps
        root = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root).real)


def test_frechet_distance_matches_scipy_sqrtm():
    x, y = _embeddings(1), _embeddings(2, shift=0.7)
    assert metrics.frechet_distance(x, y) == pytest.approx(_frechet_scipy(x, y), abs=1e-6)


def test_frechet_distance_rank_deficient_matches_scipy():
    # Fewer samples than dimensions: singular covariances, as FAD of short sets gives.
    x, y = _embeddings(3, n=6, d=10), _embeddings(4, n=7, d=10, shift=0.3)
    assert metrics.frechet_distance(x, y) == pytest.approx(_frechet_scipy(x, y), abs=1e-6)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = _embeddings(5)
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_shifted_identical_covariances_is_squared_shift():
    x = _embeddings(6)
    assert metrics.frechet_distance(x, x + 2.0) == pytest.approx(2.0**2 * x.shape[1], abs=1e-6)


def test_frechet_distance_rejects_mismatched_sizes_and_nan():
    with pytest.raises(InputError, match="sizes differ"):
        metrics.frechet_distance(_embeddings(1, d=4), _embeddings(2, d=5))
    bad = _embeddings(1)
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        metrics.frechet_distance(bad, _embeddings(2))


def test_kl_per_pair_matches_scipy_rel_entr():
    rng = np.random.default_rng(7)
    ref, gen = rng.normal(size=(12, 527)) * 3, rng.normal(size=(12, 527)) * 3
    p, q = scipy.special.softmax(ref, axis=1), scipy.special.softmax(gen, axis=1) + 1e-6
    expected = scipy.special.rel_entr(p, q).sum(axis=1)
    np.testing.assert_allclose(metrics.kl_per_pair(ref, gen), expected, atol=1e-6)


def test_kl_of_identical_logits_is_near_zero_and_needs_pairs():
    logits = np.random.default_rng(8).normal(size=(5, 10))
    assert np.abs(metrics.kl_per_pair(logits, logits)).max() < 1e-5
    with pytest.raises(InputError, match="matched pairs"):
        metrics.kl_per_pair(logits, logits[:4])


def _inception_numpy(logits, splits=10, seed=2020):
    x = logits[np.random.RandomState(seed).permutation(len(logits))]
    p = scipy.special.softmax(x, axis=1)
    size = int(np.ceil(len(x) / splits))
    scores = []
    for part in [p[i : i + size] for i in range(0, len(p), size)]:
        marginal = part.mean(axis=0)
        scores.append(np.exp(np.mean([scipy.stats.entropy(row, marginal) for row in part])))
    return np.mean(scores), np.std(scores)


def test_inception_score_matches_independent_computation():
    import scipy.stats  # noqa: F401  (used by the reference)

    logits = np.random.default_rng(9).normal(size=(53, 20)) * 2
    mean, std = metrics.inception_score(logits)
    ref_mean, ref_std = _inception_numpy(logits)
    assert mean == pytest.approx(ref_mean, abs=1e-6)
    assert std == pytest.approx(ref_std, abs=1e-6)


def test_inception_score_of_confident_distinct_classes_is_the_class_count():
    logits = np.eye(10).repeat(10, axis=0) * 1e3  # 100 clips, each certain, 10 classes evenly
    mean, _ = metrics.inception_score(logits, splits=1)
    assert mean == pytest.approx(10.0, rel=1e-6)


def test_clap_score_is_mean_cosine():
    rng = np.random.default_rng(10)
    audio, text = rng.normal(size=(9, 16)), rng.normal(size=(9, 16))
    expected = np.mean([a @ t / np.linalg.norm(a) / np.linalg.norm(t) for a, t in zip(audio, text)])
    assert metrics.clap_score(audio * 5.0, text) == pytest.approx(expected, abs=1e-9)


def test_extrapolation_matches_polyfit_and_fad_infinity_recovers_the_subsets():
    sizes = np.array([10, 20, 40, 80])
    values = 3.0 + 50.0 / sizes
    intercept, slope = metrics.extrapolate_to_infinity(sizes, values)
    assert (intercept, slope) == pytest.approx((3.0, 50.0), abs=1e-9)
    noisy = values + np.array([0.1, -0.1, 0.05, 0.0])
    np.testing.assert_allclose(metrics.extrapolate_to_infinity(sizes, noisy)[::-1], np.polyfit(1 / sizes, noisy, 1), atol=1e-9)
    ref, gen = _embeddings(11, n=80), _embeddings(12, n=80, shift=0.5)
    result = metrics.fad_infinity(ref, gen, num_points=5, seed=3)
    rng = np.random.default_rng(3)
    expected = [_frechet_scipy(ref, gen[rng.choice(80, n, replace=False)]) for n in result.sizes]
    np.testing.assert_allclose(result.fads, expected, atol=1e-6)
    slope, intercept = np.polyfit(1.0 / result.sizes, expected, 1)
    assert result.value == pytest.approx(intercept, abs=1e-6)
    assert result.ci95[0] < result.value < result.ci95[1]


def test_intercept_interval_matches_the_textbook_ols_formula():
    from scipy import stats

    sizes = np.array([10, 20, 30, 40, 60, 80])
    values = 3.0 + 50.0 / sizes + np.array([0.2, -0.1, 0.05, -0.2, 0.1, 0.0])
    fit = stats.linregress(1.0 / sizes, values)  # scipy's own intercept standard error
    half = stats.t.ppf(0.975, sizes.size - 2) * fit.intercept_stderr
    assert metrics.intercept_interval(sizes, values) == pytest.approx((fit.intercept - half, fit.intercept + half), abs=1e-9)
    exact = 3.0 + 50.0 / sizes
    assert metrics.intercept_interval(sizes, exact) == pytest.approx((3.0, 3.0), abs=1e-9)  # a perfect line: no width


def test_per_clip_frechet_scores_each_clip_against_the_reference():
    ref = _embeddings(13, n=50)
    clips = [_embeddings(14, n=6), _embeddings(15, n=6, shift=3.0)]
    scores = metrics.per_clip_frechet(ref, clips)
    assert scores[0] == pytest.approx(_frechet_scipy(ref, clips[0]), abs=1e-6)
    assert scores[1] > scores[0]


def test_bootstrap_interval_brackets_the_value_and_is_seeded():
    values = np.random.default_rng(16).normal(1.0, 1.0, size=200)
    first, second = mean_ci(values, seed=4), mean_ci(values, seed=4)
    assert first == second
    assert first.value == pytest.approx(values.mean())
    assert first.low < first.value < first.high
    # The standard error of the mean is 1/sqrt(200) ~ 0.07: a 95% interval is about +-0.14.
    assert 0.2 < first.high - first.low < 0.36


def test_paired_bootstrap_keeps_pairs_and_unpaired_resamples_each_set():
    x = np.arange(20.0)
    paired = bootstrap_ci(lambda a, b: float(np.mean(a - b)), [x, x], paired=True, resamples=50)
    assert paired.low == paired.high == 0.0
    unpaired = bootstrap_ci(lambda a, b: float(np.mean(a - b)), [x, x], paired=False, resamples=50)
    assert unpaired.low < 0.0 < unpaired.high
    with pytest.raises(InputError, match="equal length"):
        bootstrap_ci(np.mean, [x, x[:3]], paired=True)
