"""Paired metrics: known answers for identical, scaled and shifted clips; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tta.audio.mel import MelSpectrogram
from tta.errors import InputError
from tta.evaluation import log_spectral_distance, mel_distance, paired_metrics, psnr


def _noise(n: int = 16000, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).normal(size=n)).astype(np.float32)


def test_identical_clips():
    x = _noise()
    out = paired_metrics(x, x)
    assert out["mel_distance"] == 0.0 and out["lsd"] == 0.0 and out["psnr"] == float("inf")


def test_scaled_clip_known_answers():
    """x2 amplitude: log-mel up by ln 2 everywhere above the floor; power x4: LSD = log10(4)."""
    x = _noise()
    assert mel_distance(2 * x, x) == pytest.approx(np.log(2.0), rel=1e-4)
    assert log_spectral_distance(2 * x, x) == pytest.approx(np.log10(4.0), rel=1e-4)


def test_psnr_by_hand():
    x, y = _noise(seed=1), _noise(seed=2)
    mel = MelSpectrogram()
    with torch.no_grad():
        mx, my = mel(torch.from_numpy(x)).double().numpy(), mel(torch.from_numpy(y)).double().numpy()
    expected = 10 * np.log10((my.max() - my.min()) ** 2 / ((mx - my) ** 2).mean())
    assert psnr(x, y) == pytest.approx(expected, rel=1e-5)
    assert psnr(x, y) < psnr(x + 0.01 * y, x)  # a closer clip scores higher


def test_lengths_are_cut_to_the_shorter():
    x = _noise(20000)
    assert mel_distance(x, x[:16000]) == 0.0


def test_short_and_empty_clips():
    x = _noise(300)  # shorter than one LSD window: zero-padded
    assert paired_metrics(x, x)["lsd"] == 0.0
    assert log_spectral_distance(2 * x, x) > 0.1
    with pytest.raises(InputError, match="empty"):
        paired_metrics(np.zeros(0), np.zeros(100))
