"""Fréchet distance and FAD∞: parity with fadtk and frechet-audio-distance, known answers, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from tests.evaluation.reference_tools import fadtk_functions, frechet_audio_distance_function
from tta.errors import InputError
from tta.evaluation import fad_inf, frechet_distance, frechet_distance_from_stats, gaussian_stats

# (N generated, N reference, D): well conditioned, N < D (singular covariances), N << D
SHAPES = [(300, 260, 16), (50, 60, 128), (12, 9, 64), (10, 10, 160)]


def _sets(n1: int, n2: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.normal(size=d))  # unequal variances per dimension
    return rng.normal(size=(n1, d)) * scale, rng.normal(size=(n2, d)) * scale * 1.2 + 0.3


def _low_rank_sets(d: int = 64, rank: int = 3, seed: int = 1):
    """Embeddings on a 3-d subspace plus 1e-6 noise: covariance condition numbers ~1e12."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, d))
    x = rng.normal(size=(200, rank)) @ basis + 1e-6 * rng.normal(size=(200, d))
    y = rng.normal(size=(150, rank)) @ basis * 1.5 + 0.1 + 1e-6 * rng.normal(size=(150, d))
    return x, y


@pytest.mark.parametrize("shape", SHAPES + ["low-rank"])
def test_matches_fadtk_and_frechet_audio_distance(shape):
    x, y = _low_rank_sets() if shape == "low-rank" else _sets(*shape)
    ours = frechet_distance(x, y)
    fadtk = fadtk_functions()
    a, b = fadtk.calc_embd_statistics(x), fadtk.calc_embd_statistics(y)
    theirs_fadtk = fadtk.calc_frechet_distance(a[0], a[1], b[0], b[1])
    theirs_fad = frechet_audio_distance_function()(a[0], a[1], b[0], b[1])
    assert ours == pytest.approx(float(np.real(theirs_fadtk)), rel=1e-6)
    assert ours == pytest.approx(float(np.real(theirs_fad)), rel=1e-6)
    ours_stats = gaussian_stats(x)
    np.testing.assert_allclose(ours_stats.mu, a[0], rtol=1e-12)
    np.testing.assert_allclose(ours_stats.cov, a[1], rtol=1e-10, atol=1e-14)


def test_set_against_itself_is_zero():
    for n, _, d in SHAPES:
        x, _ = _sets(n, n, d)
        assert abs(frechet_distance(x, x)) < 1e-6 * d
    x, _ = _low_rank_sets()
    assert abs(frechet_distance(x, x)) < 1e-8


def test_closed_form_for_gaussians():
    """Equal covariances: FAD = |shift|^2 exactly; isotropic scales s1, s2: d (s1 - s2)^2 + |shift|^2."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 24))
    shift = rng.normal(size=24)
    assert frechet_distance(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-9)
    d, s1, s2 = 8, 1.0, 3.0
    mu = np.zeros(d)
    value = frechet_distance_from_stats(mu, s1**2 * np.eye(d), mu + 2.0, s2**2 * np.eye(d))
    assert value == pytest.approx(d * (s1 - s2) ** 2 + 4.0 * d, rel=1e-12)


def test_symmetric_and_nonnegative():
    x, y = _sets(40, 70, 96, seed=5)
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-9)
    assert frechet_distance(x, y) > 0
    a, b = gaussian_stats(x), gaussian_stats(y)  # N < D: the data-factor path equals the covariance path
    assert frechet_distance(x, y) == pytest.approx(frechet_distance_from_stats(a.mu, a.cov, b.mu, b.cov), rel=1e-8)


def test_fad_inf_matches_fadtk_score_inf(tmp_path):
    """Same subsets (np.random.choice after np.random.seed) -> the same points, fit and intercept."""
    x, y = _sets(120, 100, 8, seed=7)
    fadtk = fadtk_functions()
    np.save(tmp_path / "eval.npy", x)
    mu, cov = fadtk.calc_embd_statistics(y)
    fake_self = type("FAD", (), {"ml": type("ML", (), {"name": "ref"})(), "load_stats": lambda self, b: (mu, cov)})()
    np.random.seed(11)
    theirs = fadtk.score_inf(fake_self, "baseline", [tmp_path / "eval.npy"], steps=10, min_n=30)
    ours = fad_inf(x, y, steps=10, min_n=30, rng=np.random.RandomState(11))
    assert [n for n, _ in ours.points] == [n for n, _ in theirs.points]
    np.testing.assert_allclose([v for _, v in ours.points], [v for _, v in theirs.points], rtol=1e-6)
    assert ours.score == pytest.approx(theirs.score, rel=1e-6)
    assert ours.slope == pytest.approx(theirs.slope, rel=1e-6)
    assert ours.r2 == pytest.approx(theirs.r2, rel=1e-6)


def test_fad_inf_removes_small_sample_bias():
    """Two samples of one Gaussian: FAD at finite n is > 0 (bias ~ 1/n); FAD∞ is much closer to 0."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 16)), rng.normal(size=(4000, 16))
    finite = frechet_distance(x[:100], y)
    result = fad_inf(x, y, steps=15, min_n=50)
    assert finite > 0.1
    assert abs(result.score) < 0.3 * finite
    assert result.slope > 0 and result.r2 > 0.5


@pytest.mark.parametrize(
    "x, y, match",
    [
        (np.zeros((1, 4)), np.zeros((5, 4)), "at least 2"),
        (np.zeros((5, 4)), np.zeros((5, 3)), "sizes differ"),
        (np.zeros(5), np.zeros((5, 4)), r"\[N, D\]"),
        (np.full((3, 2), np.nan), np.zeros((3, 2)), "NaN"),
    ],
)
def test_bad_input(x, y, match):
    with pytest.raises(InputError, match=match):
        frechet_distance(x, y)
