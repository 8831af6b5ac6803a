"""Scores from embeddings and classifier outputs: CLAP score, KL divergence, Inception Score.

CLAP score (mean text-audio cosine similarity of each clip with its own prompt) in the three conventions
papers use, each under its own name:

* ``clap_score``: the mean cosine, in [-1, 1].
* ``clap_score_x100``: the same times 100.
* ``clap_score_w2.5``: the mean of ``2.5 * max(0, cos)`` (the CLIPScore convention, Hessel et al. 2021,
  arXiv:2104.08718, w = 2.5).

KL and Inception Score follow audioldm_eval's formulas (which the AudioLDM and AudioGen papers report), on
classifier logits [N, C]; ``generated[i]`` is compared with ``reference[i]`` (pairs matched by file name):

* ``kl_softmax``: ``sum_i KL(softmax(ref_i) || softmax(gen_i) + 1e-6) / N``.
* ``kl_sigmoid``: the same sum with per-class sigmoids in place of the softmax, i.e.
  ``sum_i sum_c q_ic (log q_ic - log(p_ic + 1e-6)) / N`` with ``q = sigmoid(ref)``, ``p = sigmoid(gen)``
  (audioldm_eval's multi-label variant; note it keeps no ``1 - q`` terms).
* ``inception_score``: ``exp(E_x KL(p(y|x) || p(y)))`` in ``splits`` chunks after a seeded shuffle; mean and
  standard deviation over the chunks.
"""

from __future__ import annotations

import numpy as np

from tta.errors import InputError

KL_EPS = 1e-6


def _logits(x, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise InputError(f"{what}: logits must be an array [N, C] with N >= 1, got shape {x.shape}")
    return x


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _kl_sum(target: np.ndarray, prediction: np.ndarray) -> float:
    """``sum target * (log target - log(prediction + eps))`` over entries with target > 0."""
    log_t = np.log(np.where(target > 0, target, 1.0))
    return float(np.sum(np.where(target > 0, target * (log_t - np.log(prediction + KL_EPS)), 0.0)))


def kl_divergence(generated_logits, reference_logits, activation: str = "softmax") -> float:
    """Mean KL(reference || generated) per pair, from logits [N, C] each (see the module docstring).

    Args:
        activation: ``"softmax"`` (single-label classes) or ``"sigmoid"`` (multi-label, e.g. AudioSet).
    """
    gen, ref = _logits(generated_logits, "generated"), _logits(reference_logits, "reference")
    if gen.shape != ref.shape:
        raise InputError(f"KL needs paired logits of one shape, got {gen.shape} and {ref.shape}")
    if activation == "softmax":
        p, q = _softmax(gen), _softmax(ref)
    elif activation == "sigmoid":
        p, q = 1.0 / (1.0 + np.exp(-gen)), 1.0 / (1.0 + np.exp(-ref))
    else:
        raise InputError(f"unknown KL activation {activation!r} (softmax or sigmoid)")
    return _kl_sum(q, p) / len(gen)


def inception_score(logits, splits: int = 10, shuffle_seed: int | None = 2020) -> tuple[float, float]:
    """Inception Score of classifier logits [N, C] -> (mean, std) over ``min(splits, N)`` chunks.

    The rows are first permuted with ``np.random.RandomState(shuffle_seed)`` (None: no shuffle), as
    audioldm_eval does with seed 2020 and 10 splits.
    """
    x = _logits(logits, "inception score")
    n = len(x)
    if shuffle_seed is not None:
        x = x[np.random.RandomState(shuffle_seed).permutation(n)]
    splits = max(1, min(int(splits), n))
    p, log_p = _softmax(x), _log_softmax(x)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        q = p[lo:hi].mean(axis=0, keepdims=True)
        scores.append(float(np.exp((p[lo:hi] * (log_p[lo:hi] - np.log(q))).sum(axis=1).mean())))
    return float(np.mean(scores)), float(np.std(scores))


def clap_cosines(text_embeddings, audio_embeddings) -> np.ndarray:
    """Row-wise cosine similarity of text [N, D] and audio [N, D] embeddings -> [N]."""
    t, a = np.asarray(text_embeddings, np.float64), np.asarray(audio_embeddings, np.float64)
    if t.shape != a.shape or t.ndim != 2:
        raise InputError(f"CLAP score needs text and audio embeddings of one shape [N, D], got {t.shape}, {a.shape}")
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    return (t * a).sum(axis=1)


def clap_scores(cosines) -> dict[str, float]:
    """Per-clip cosines [N] -> the three CLAP score conventions of the module docstring."""
    c = np.asarray(cosines, np.float64)
    if c.size == 0:
        raise InputError("CLAP score of no clips")
    return {
        "clap_score": float(c.mean()),
        "clap_score_x100": float(100.0 * c.mean()),
        "clap_score_w2.5": float((2.5 * np.maximum(c, 0.0)).mean()),
    }
