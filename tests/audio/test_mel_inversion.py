"""The fixed mel refinement after a vocoder: Griffin-Lim equal to librosa's, KL updates that never raise the
divergence, and a refined waveform whose mel is closer to its target than the vocoder's was."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from tta.audio.mel import MelSpectrogram
from tta.audio.mel_inversion import fit_magnitude_to_mel, griffin_lim, refine_to_mel
from tta.errors import InputError


def signal(seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    t = torch.arange(int(16000 * seconds), dtype=torch.float64) / 16000
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(t.numel(), generator=g, dtype=torch.float64) * torch.linspace(0, 0.05, t.numel())
    return (0.3 * torch.sin(2 * np.pi * (220 + 300 * t) * t) + 0.1 * torch.sin(2 * np.pi * 1500 * t) + noise)[None]


def kl(mel, basis, x):
    approx = basis @ x
    return float((mel * torch.log(mel / approx) - mel + approx).sum())


def test_griffin_lim_matches_librosa_from_zero_phase():
    n_fft, hop, n = 512, 128, 8000
    x = signal()[:, :n]
    window = torch.hann_window(n_fft, dtype=torch.float64)
    spec = torch.stft(x, n_fft, hop, n_fft, window=window, center=True, pad_mode="reflect", return_complex=True)
    ours = griffin_lim(spec.abs(), n_fft, hop, iterations=6, length=n, window=window)
    ref = librosa.griffinlim(
        spec.abs()[0].numpy(), n_iter=6, hop_length=hop, n_fft=n_fft, window="hann", center=True,
        pad_mode="reflect", momentum=0.99, init=None, length=n,
    )  # fmt: skip
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=1e-6 * np.abs(ref).max(), rtol=0)


def test_griffin_lim_from_the_true_phase_keeps_the_signal_and_checks_its_bins():
    n_fft, hop = 512, 128
    x = signal().float()
    window = torch.hann_window(n_fft)
    spec = torch.stft(x, n_fft, hop, n_fft, window=window, center=True, pad_mode="reflect", return_complex=True)
    out = griffin_lim(spec.abs(), n_fft, hop, iterations=4, length=x.shape[-1], init=spec)
    torch.testing.assert_close(out, x, atol=1e-4, rtol=0)  # a consistent STFT is a fixed point
    with pytest.raises(InputError, match="bins"):
        griffin_lim(spec.abs(), 1024, hop, iterations=1, length=x.shape[-1])


def test_kl_updates_never_raise_the_divergence_and_reach_a_reachable_mel():
    mel_fe = MelSpectrogram()
    basis = mel_fe.mel_basis.double()
    truth = mel_fe.magnitude(signal())  # [1, F, T]
    target = basis @ truth
    start = truth * torch.exp(
        torch.randn(truth.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    )
    values, x = [kl(target, basis, start)], start
    for _ in range(20):
        x = fit_magnitude_to_mel(x, target, basis, iterations=5)
        values.append(kl(target, basis, x))
    assert all(b <= a * (1 + 1e-9) for a, b in zip(values, values[1:])), values
    assert values[-1] < 0.01 * values[0]
    rel = ((basis @ x) - target).abs().sum() / target.sum()
    assert rel < 0.02, float(rel)
    assert torch.equal(fit_magnitude_to_mel(start, target, basis, iterations=0), start)


def test_refinement_brings_a_distorted_waveform_back_towards_its_mel():
    mel_fe = MelSpectrogram()
    x = signal().float()
    target = mel_fe(x)  # [1, T, 64]
    # a "vocoder" that got the spectral balance wrong: a crude high shelf
    spec = torch.fft.rfft(x)
    tilt = torch.linspace(1.0, 3.0, spec.shape[-1])
    distorted = torch.fft.irfft(spec * tilt, n=x.shape[-1])
    before = (mel_fe(distorted) - target).abs().mean()
    refined = refine_to_mel(
        distorted, target, mel_fe.mel_basis, 1024, 160, fit_iterations=30, griffin_lim_iterations=8
    )
    after = (mel_fe(refined) - target).abs().mean()
    assert refined.shape == x.shape and refined.dtype == torch.float32
    assert after < 0.3 * before, (float(before), float(after))
    untouched = refine_to_mel(x, target, mel_fe.mel_basis, 1024, 160, fit_iterations=0, griffin_lim_iterations=0)
    torch.testing.assert_close(untouched, x, atol=1e-5, rtol=0)  # STFT and back
    with pytest.raises(InputError, match="takes"):
        refine_to_mel(x[0], target, mel_fe.mel_basis, 1024, 160)
