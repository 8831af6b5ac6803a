"""Fréchet Audio Distance: the Fréchet distance between Gaussians fitted to two sets of embeddings.

    FAD = ||mu_1 - mu_2||^2 + tr(C_1) + tr(C_2) - 2 tr((C_1 C_2)^(1/2))

(Kilgour et al. 2019, "Fréchet Audio Distance", arXiv:1812.08466.) The covariances are the unbiased sample
covariances (``np.cov``), as in fadtk and frechet-audio-distance.

The trace of the matrix square root is computed without ``scipy.linalg.sqrtm``: with factors ``C_i = B_i B_i^T``
(``B_i`` the centred embeddings / sqrt(N_i - 1) when N_i <= D, else from a symmetric eigendecomposition with
round-off negative eigenvalues set to 0), ``C_1 C_2`` has the same non-zero eigenvalues as ``A A^T`` with
``A = B_1^T B_2``, so ``tr((C_1 C_2)^(1/2))`` is the sum of the singular values of ``A``. No eigenvalue is
squared or square-rooted, so the result stays real and accurate for singular, ill-conditioned covariances
(fewer samples than dimensions), where ``sqrtm`` of the non-symmetric product returns complex round-off, NaN,
or adds a round-off square root for each of the D - N zero eigenvalues.

FAD∞ (Gui et al. 2024, "Adapting Fréchet Audio Distance for Generative Music Evaluation", arXiv:2311.01616,
as fadtk computes it): FAD of ``n`` embeddings drawn with replacement from the evaluated set, for ``steps``
values of ``n`` evenly spaced from ``min_n`` to the set size, then a least-squares line in ``1 / n``; its
intercept is FAD∞, the FAD of an infinitely large evaluated set.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tta.errors import InputError


class GaussianStats(NamedTuple):
    """Mean [D] and unbiased covariance [D, D] of a set of embeddings, float64."""

    mu: np.ndarray
    cov: np.ndarray
    n: int


def _as_embeddings(x, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"{what}: embeddings must be an array [N, D], got shape {x.shape}")
    if x.shape[0] < 2:
        raise InputError(f"{what}: a Fréchet distance needs at least 2 embeddings, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise InputError(f"{what}: embeddings hold NaN or infinite values")
    return x


def gaussian_stats(embeddings, what: str = "embeddings") -> GaussianStats:
    """Embeddings [N, D] (N >= 2) -> :class:`GaussianStats` (mean [D], covariance [D, D])."""
    x = _as_embeddings(embeddings, what)
    return GaussianStats(x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]), x.shape[0])


def psd_factor(cov: np.ndarray) -> np.ndarray:
    """``B`` [D, D] with ``B @ B.T == cov`` for a positive semi-definite [D, D] matrix.

    Eigenvalues within round-off of 0 (below ``D * eps * max eigenvalue``, negative ones included) are set to 0.
    """
    cov = np.asarray(cov, dtype=np.float64)
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    w = np.where(w > max(w.max(initial=0.0), 0.0) * len(w) * np.finfo(np.float64).eps, w, 0.0)
    return v * np.sqrt(w)


def data_factor(x: np.ndarray) -> np.ndarray:
    """``B`` with ``B @ B.T == np.cov(x, rowvar=False)`` for embeddings [N, D]: [D, N] if N <= D, else [D, D]."""
    n, d = x.shape
    if n > d:
        return psd_factor(np.cov(x, rowvar=False).reshape(d, d))
    return (x - x.mean(axis=0)).T / np.sqrt(n - 1)


def trace_sqrt_product(factor1: np.ndarray, factor2: np.ndarray) -> float:
    """``tr((C_1 C_2)^(1/2))`` from factors ``C_i = B_i B_i^T`` ([D, r_i]): the nuclear norm of ``B_1^T B_2``."""
    return float(np.linalg.svd(factor1.T @ factor2, compute_uv=False).sum())


def _check_sizes(mu1, cov1, mu2, cov2) -> None:
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.size, mu1.size):
        raise InputError(
            f"embedding sizes differ: mean {mu1.shape} vs {mu2.shape}, covariance {cov1.shape} vs {cov2.shape}"
        )


def frechet_distance_from_stats(mu1, cov1, mu2, cov2) -> float:
    """Fréchet distance between N(mu1 [D], cov1 [D, D]) and N(mu2 [D], cov2 [D, D])."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    _check_sizes(mu1, cov1, mu2, cov2)
    diff = mu1 - mu2
    tr_sqrt = trace_sqrt_product(psd_factor(cov1), psd_factor(cov2))
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt)


def _from_factors(mu1: np.ndarray, b1: np.ndarray, mu2: np.ndarray, b2: np.ndarray) -> float:
    diff = mu1 - mu2
    # tr(C) = ||B||_F^2 for C = B B^T
    return float(diff @ diff + (b1**2).sum() + (b2**2).sum() - 2.0 * trace_sqrt_product(b1, b2))


def frechet_distance(x, y) -> float:
    """FAD between two sets of embeddings ``x`` [N, D] and ``y`` [M, D] (N, M >= 2; N < D is fine).

    Equals :func:`frechet_distance_from_stats` of their :func:`gaussian_stats`; with fewer samples than
    dimensions the covariance factors are the centred data themselves, which is both cheaper and exact.
    """
    x, y = _as_embeddings(x, "first set"), _as_embeddings(y, "second set")
    if x.shape[1] != y.shape[1]:
        raise InputError(f"embedding sizes differ: {x.shape[1]} vs {y.shape[1]}")
    return _from_factors(x.mean(axis=0), data_factor(x), y.mean(axis=0), data_factor(y))


class FadInf(NamedTuple):
    """FAD∞ (the intercept), the slope of FAD against 1/n, the fit's R², and the (n, FAD) points."""

    score: float
    slope: float
    r2: float
    points: list[tuple[int, float]]


def fad_inf(
    evaluated,
    reference,
    steps: int = 25,
    min_n: int | None = None,
    rng: np.random.RandomState | np.random.Generator | None = None,
) -> FadInf:
    """FAD∞ of ``evaluated`` [N, D] against ``reference`` [M, D] (fit against 1/n as fadtk does).

    Args:
        steps: number of subset sizes ``n``, evenly spaced from ``min_n`` to N.
        min_n: smallest subset (default: fadtk's 500, lowered to N // 2 for smaller sets; at least 2).
        rng: draws the subsets with replacement (``choice``); default ``np.random.default_rng(0)``.
    """
    ev = _as_embeddings(evaluated, "evaluated set")
    ref = _as_embeddings(reference, "reference set")
    if ev.shape[1] != ref.shape[1]:
        raise InputError(f"embedding sizes differ: {ev.shape[1]} vs {ref.shape[1]}")
    ref_mu, ref_factor = ref.mean(axis=0), data_factor(ref)  # computed once for all subsets
    if ev.shape[0] < 4:
        raise InputError(f"FAD-inf needs at least 4 evaluated embeddings, got {ev.shape[0]}")
    if steps < 2:
        raise InputError(f"FAD-inf needs at least 2 steps, got {steps}")
    max_n = ev.shape[0]
    min_n = max(2, min(500, max_n // 2)) if min_n is None else int(min_n)
    rng = np.random.default_rng(0) if rng is None else rng
    points = []
    for n in (int(n) for n in np.linspace(min_n, max_n, steps)):
        sub = ev[rng.choice(max_n, size=n, replace=True)]
        points.append((n, _from_factors(sub.mean(axis=0), data_factor(sub), ref_mu, ref_factor)))
    xs, ys = 1.0 / np.array([p[0] for p in points], dtype=np.float64), np.array([p[1] for p in points])
    slope, intercept = np.polyfit(xs, ys, 1)
    ss_tot = np.sum((ys - ys.mean()) ** 2)
    r2 = 1.0 - np.sum((ys - (slope * xs + intercept)) ** 2) / ss_tot if ss_tot > 0 else 1.0
    return FadInf(float(intercept), float(slope), float(r2), points)
