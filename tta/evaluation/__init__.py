"""Evaluation of generated audio: FAD / FAD∞, CLAP score, KL, Inception Score, paired metrics.

The maths needs only numpy: ``frechet_distance(x [N, D], y [M, D]) -> float``. :func:`evaluate` runs the whole
evaluation of two folders (what ``tta eval`` calls); embedding backends live in ``tta.evaluation.backends``.
"""

from tta.evaluation.frechet import (
    FadInf,
    GaussianStats,
    fad_inf,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
)
from tta.evaluation.paired import log_spectral_distance, mel_distance, paired_metrics, psnr
from tta.evaluation.scores import clap_cosines, clap_scores, inception_score, kl_divergence


def evaluate(*args, **kwargs) -> dict:
    """See :func:`tta.evaluation.runner.evaluate` (imported on first use: it pulls in torch and the backends)."""
    from tta.evaluation.runner import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def markdown(report: dict) -> str:
    from tta.evaluation.report import markdown as _markdown

    return _markdown(report)


def write_report(report: dict, out_dir, plots: bool = False):
    from tta.evaluation.report import write_report as _write_report

    return _write_report(report, out_dir, plots=plots)


__all__ = [
    "FadInf",
    "GaussianStats",
    "clap_cosines",
    "clap_scores",
    "evaluate",
    "fad_inf",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
    "inception_score",
    "kl_divergence",
    "log_spectral_distance",
    "mel_distance",
    "paired_metrics",
    "psnr",
]
