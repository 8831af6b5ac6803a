"""Kernel Audio Distance (Chung et al. 2025, "KAD: No More FAD! An Effective and Efficient Evaluation Metric for
Audio Generation", arXiv:2502.15602): the unbiased squared maximum mean discrepancy between two sets of
embeddings under a characteristic kernel, times 100.

    KAD = s * [ 1/(n(n-1)) sum_{i != j} k(x_i, x_j) + 1/(m(m-1)) sum_{i != j} k(y_i, y_j) - 2/(nm) sum_{i,j} k(x_i, y_j) ]

No Gaussian is fitted, so unlike FAD it has no bias from the sample size (its expectation is the population
MMD² at any n >= 2; it can come out slightly negative for two samples of one distribution).

Defaults are kadtk 1.1.0's (``KernelAudioDistance.score(baseline, eval)``, which these functions match to 1e-6 in
``tests/evaluation/test_kad.py``): the Gaussian kernel ``k(a, b) = exp(-||a - b||^2 / (2 h^2 + 1e-8))``; the
bandwidth ``h`` the median of the pairwise Euclidean distances within the *evaluated* set (kadtk's ``y``; the
lower of the two middle values when their number is even, as ``torch.median``); scale ``s = 100``. ``bandwidth``
can be a number or ``"reference"`` to take the median over the reference set instead, which keeps ``h`` fixed
while comparing several evaluated sets. ``kernel="iq"`` / ``"imq"`` are kadtk's inverse (multi)quadratic kernels.
We compute in float64 (kadtk in float32).

Per-clip scores (:func:`per_clip_kernel_distance`): for each evaluated clip, the squared distance, in the
kernel's feature space, between the mean feature of its frames and that of the reference set, with the same
bandwidth as the set-level KAD and the same scale; for a clip-level backend (one frame) it is
``s * (1 + mean_{i != j} k(y_i, y_j) - 2 mean_j k(x, y_j))``. A clip far from every reference sound scores near
``s * (1 + mean k(y, y))``; one sitting among the references scores low.
"""

from __future__ import annotations

import numpy as np
import torch

from tta.errors import InputError

SCALE = 100.0  # kadtk's SCALE_FACTOR
EPS = 1e-8  # kadtk's eps in gamma = 1 / (2 h^2 + eps)
KERNELS = ("gaussian", "iq", "imq")
KAD_POOLS = ("frames", "clips")  # what tta eval feeds KAD: every frame (kadtk's), or one mean per clip


def _embeddings(x, what: str, min_rows: int = 2) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if x.ndim != 2 or x.shape[0] < min_rows:
        raise InputError(f"{what}: KAD needs embeddings [N >= {min_rows}, D], got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise InputError(f"{what}: embeddings hold NaN or infinite values")
    return x


def median_pairwise_distance(x) -> float:
    """The median Euclidean distance over the N(N-1)/2 pairs of rows of ``x`` [N >= 2, D] (lower middle value)."""
    x = _embeddings(x, "embeddings")
    return float(torch.pdist(x).median())


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N, M] squared Euclidean distances between the rows of ``a`` [N, D] and ``b`` [M, D]."""
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T).clamp_min(0.0)


def kernel(d2: torch.Tensor, bandwidth: float, name: str = "gaussian") -> torch.Tensor:
    """Kernel values from squared distances ``d2`` (any shape), with ``gamma = 1 / (2 h^2 + 1e-8)``."""
    gamma = 1.0 / (2.0 * bandwidth**2 + EPS)
    if name == "gaussian":
        return torch.exp(-gamma * d2)
    if name == "iq":
        return 1.0 / (1.0 + gamma * d2)
    if name == "imq":
        return 1.0 / torch.sqrt(1.0 + gamma * d2)
    raise InputError(f"unknown KAD kernel {name!r}; known: {', '.join(KERNELS)}")


def resolve_bandwidth(evaluated, reference, bandwidth: float | str | None) -> float:
    """``None`` / ``"evaluated"``: median pairwise distance of ``evaluated`` (kadtk); ``"reference"``: of
    ``reference``; a number: itself."""
    if bandwidth is None or bandwidth == "evaluated":
        return median_pairwise_distance(evaluated)
    if bandwidth == "reference":
        return median_pairwise_distance(reference)
    value = float(bandwidth)
    if not (np.isfinite(value) and value > 0):
        raise InputError(f"KAD bandwidth must be > 0, got {bandwidth!r}")
    return value


def _off_diagonal_mean(k: torch.Tensor) -> torch.Tensor:
    n = k.shape[0]
    return (k.sum() - k.diagonal().sum()) / (n * (n - 1))


def kernel_audio_distance(
    evaluated, reference, bandwidth: float | str | None = None, kernel_name: str = "gaussian", scale: float = SCALE
) -> float:
    """KAD between ``evaluated`` [N, D] and ``reference`` [M, D] embeddings (N, M >= 2); see the module docstring."""
    x, y = _embeddings(evaluated, "evaluated set"), _embeddings(reference, "reference set")
    if x.shape[1] != y.shape[1]:
        raise InputError(f"embedding sizes differ: {x.shape[1]} vs {y.shape[1]}")
    h = resolve_bandwidth(x, y, bandwidth)
    k_xx = _off_diagonal_mean(kernel(squared_distances(x, x), h, kernel_name))
    k_yy = _off_diagonal_mean(kernel(squared_distances(y, y), h, kernel_name))
    k_xy = kernel(squared_distances(x, y), h, kernel_name).mean()
    return float(scale * (k_xx + k_yy - 2.0 * k_xy))


def per_clip_kernel_distance(
    clips: list, reference, bandwidth: float, kernel_name: str = "gaussian", scale: float = SCALE
) -> list[float]:
    """For each clip's frames [T_i, D], the squared kernel-mean distance to ``reference`` [M, D] (module docstring)."""
    y = _embeddings(reference, "reference set")
    k_yy = _off_diagonal_mean(kernel(squared_distances(y, y), bandwidth, kernel_name))
    out = []
    for frames in clips:
        x = _embeddings(frames, "clip", min_rows=1)
        k_xx = kernel(squared_distances(x, x), bandwidth, kernel_name).mean()
        k_xy = kernel(squared_distances(x, y), bandwidth, kernel_name).mean()
        out.append(float(scale * (k_xx + k_yy - 2.0 * k_xy)))
    return out
