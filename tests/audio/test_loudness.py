"""Loudness (BS.1770-4) and true peak: known answers, pyloudnorm itself, and normalising to a target with the
true-peak limit kept."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tta.audio.limiter import DEFAULT_PEAK_LIMIT
from tta.audio.loudness import (
    check_target_lufs,
    limiter_gain,
    loudness_summary,
    measure_loudness,
    normalize_loudness,
    true_peak,
)
from tta.errors import InputError

pyloudnorm = pytest.importorskip("pyloudnorm")
SR = 16000


def _sine(freq: float, peak: float, seconds: float, sr: int = SR) -> np.ndarray:
    return peak * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)


def test_sine_at_minus_20_dbfs_reads_minus_23_lufs():
    # BS.1770-4: a 0 dBFS 997 Hz sine on one channel reads 10 log10(1/2) = -3.01 LKFS (the -0.691 offset cancels
    # the K-filter's gain there), so a -20 dBFS peak sine reads -23.01. pyloudnorm designs its K-filter from the
    # shelf's parameters rather than the spec's 48 kHz coefficients: -23.05 here (EBU Tech 3341 allows +-0.1 LU)
    expected = 10 * math.log10(0.5) - 20.0
    assert measure_loudness(_sine(997, 0.1, 5.0, 48000), 48000)[0] == pytest.approx(expected, abs=0.06)
    # at 16 kHz the K-filter (designed for this rate) differs slightly at 1 kHz
    assert measure_loudness(_sine(1000, 0.1, 5.0), SR)[0] == pytest.approx(expected, abs=0.1)


def test_matches_pyloudnorm_and_scales_with_gain():
    rng = np.random.default_rng(0)
    noise = rng.normal(scale=0.1, size=(2, 3 * SR)) * np.linspace(0.2, 1.0, 3 * SR)
    ours = measure_loudness(noise, SR)
    theirs = [pyloudnorm.Meter(SR).integrated_loudness(row) for row in noise]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(measure_loudness(noise * 2, SR), ours + 20 * math.log10(2), atol=1e-9)


def test_short_and_silent_clips():
    short = _sine(1000, 0.1, 0.1)  # 100 ms: shorter than a 400 ms gating block
    theirs = pyloudnorm.Meter(SR, block_size=short.size / SR).integrated_loudness(short)
    assert measure_loudness(short, SR)[0] == pytest.approx(theirs, abs=1e-12)
    assert measure_loudness(short, SR)[0] == pytest.approx(measure_loudness(_sine(1000, 0.1, 2.0), SR)[0], abs=0.2)
    assert measure_loudness(np.zeros((2, SR)), SR).tolist() == [-math.inf, -math.inf]
    assert measure_loudness(np.zeros((1, 0)), SR)[0] == -math.inf


def test_true_peak_finds_inter_sample_peaks():
    n = np.arange(SR)
    fade = np.minimum(1.0, np.minimum(n, n[::-1]) / 800.0)  # no onset transient
    wav = 0.5 * np.sin(np.pi * n / 2 + np.pi / 4) * fade  # fs/4, samples at +-0.354: the peaks fall between them
    assert np.abs(wav).max() == pytest.approx(0.5 / math.sqrt(2), rel=1e-3)
    assert true_peak(wav)[0] == pytest.approx(0.5, rel=0.01)  # within 0.1 dB
    low = _sine(100, 0.5, 1.0)  # well oversampled already: true peak = sample peak
    assert true_peak(low)[0] == pytest.approx(np.abs(low).max(), rel=1e-3)


def _batch() -> np.ndarray:
    rng = np.random.default_rng(1)
    quiet_tone = _sine(440, 0.02, 2.0)
    noise = rng.normal(scale=0.05, size=2 * SR)
    clicks = 0.01 * rng.normal(size=2 * SR)
    clicks[:: SR // 4] = 0.9  # very peaky: -23 LUFS needs a limiter
    loud = np.clip(rng.normal(scale=0.8, size=2 * SR), -1, 1)
    return np.stack([quiet_tone, noise, clicks, loud]).astype(np.float32)


@pytest.mark.parametrize("target", [-23.0, -16.0])
def test_normalize_reaches_target_and_keeps_the_true_peak(target):
    audio = _batch()
    out, measured, gain_db = normalize_loudness(audio, SR, target, DEFAULT_PEAK_LIMIT)
    assert out.dtype == np.float32 and out.shape == audio.shape
    np.testing.assert_allclose(measured, measure_loudness(audio, SR), atol=1e-9)
    np.testing.assert_allclose(measure_loudness(out, SR), target, atol=0.5)
    assert (true_peak(out) <= DEFAULT_PEAK_LIMIT + 1e-6).all()
    assert gain_db[0] == pytest.approx(target - measured[0], abs=0.2)  # a plain gain for the quiet tone
    np.testing.assert_allclose(out[0], audio[0] * 10 ** (gain_db[0] / 20), rtol=1e-5, atol=1e-7)


def test_limiter_gain_stays_under_one_and_smooth():
    wav = _batch()[2].astype(np.float64) * 30
    g = limiter_gain(wav, 0.9, SR)
    assert g.max() <= 1.0 and g.min() > 0
    assert np.abs(np.diff(g)).max() < 1.0 / (0.005 * SR) + 1e-9  # a moving average over 5 ms: bounded slope
    assert (np.abs(wav * g) <= 0.9).all()


def test_normalize_torch_batch_silence_and_bad_input():
    audio = torch.from_numpy(_batch()[:2])
    audio = torch.cat([audio, torch.zeros(1, audio.shape[1])])
    out, measured, gain_db = normalize_loudness(audio, SR, -23.0, DEFAULT_PEAK_LIMIT)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert torch.equal(out[2], audio[2]) and measured[2] == -math.inf and gain_db[2] == 0.0
    one, _, _ = normalize_loudness(_batch()[1], SR, -23.0)  # [N] in, [N] out; no peak limit
    assert one.shape == (2 * SR,) and measure_loudness(one, SR)[0] == pytest.approx(-23.0, abs=0.1)
    with pytest.raises(InputError, match="NaN"):
        normalize_loudness(np.full((1, SR), np.nan), SR, -23.0)
    with pytest.raises(InputError, match=r"\[-70, 0\]"):
        normalize_loudness(_batch(), SR, 3.0)
    with pytest.raises(InputError):
        normalize_loudness(_batch(), SR, -23.0, peak_limit=1.5)
    assert check_target_lufs(None) is None and check_target_lufs("-14") == -14.0


def test_loudness_summary():
    s = loudness_summary([-20.0, -30.0, -math.inf, -25.0], [0.5, 1.0, 0.0, 0.25])
    assert s["clips"] == 4 and s["silent"] == 1
    assert (s["lufs_min"], s["lufs_median"], s["lufs_max"]) == (-30.0, -25.0, -20.0)
    assert s["true_peak_dbtp_max"] == pytest.approx(0.0) and s["true_peak_dbtp_min"] == -200.0
