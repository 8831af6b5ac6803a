"""Metrics of a generated clip against its own reference clip (same file name): reconstruction-style scores.

Both waveforms are 16 kHz mono [N]; the longer one is cut to the shorter length first, and pairs shorter than
one LSD window (2048 samples, 0.128 s) are zero-padded to it.

* ``mel_distance``: mean absolute difference of AudioLDM log-mels (64 bins, natural log; lower is better).
* ``lsd``: log-spectral distance on power spectrograms (n_fft 2048, hop 512, Hann), in log10 units:
  ``mean_t sqrt(mean_f (log10 P_ref - log10 P_gen)^2)`` with 1e-8 added to both powers (the convention of
  the speech super-resolution literature, e.g. NVSR/AudioSR; lower is better).
* ``psnr``: peak signal-to-noise ratio of the generated log-mel against the reference log-mel, in dB, with the
  reference's value range as the peak: ``10 log10(range^2 / MSE)`` (higher is better; inf when identical).
"""

from __future__ import annotations

import numpy as np
import torch

from tta.errors import InputError

LSD_N_FFT = 2048
LSD_HOP = 512
LSD_EPS = 1e-8

_MEL = None


def _mel(wav: np.ndarray) -> np.ndarray:
    global _MEL
    if _MEL is None:
        from tta.audio.mel import MelSpectrogram

        _MEL = MelSpectrogram()
    with torch.no_grad():
        return _MEL(torch.as_tensor(wav, dtype=torch.float32)).numpy().astype(np.float64)  # [T, 64]


def _pair(generated, reference) -> tuple[np.ndarray, np.ndarray]:
    gen, ref = np.asarray(generated, np.float32).reshape(-1), np.asarray(reference, np.float32).reshape(-1)
    n = min(len(gen), len(ref))
    if n == 0:
        raise InputError("paired metrics of an empty clip")
    pad = max(0, LSD_N_FFT - n)
    return np.pad(gen[:n], (0, pad)), np.pad(ref[:n], (0, pad))


def mel_distance(generated, reference) -> float:
    """Mean |log-mel(gen) - log-mel(ref)| of two 16 kHz waveforms [N]."""
    gen, ref = _pair(generated, reference)
    return float(np.abs(_mel(gen) - _mel(ref)).mean())


def _power(wav: np.ndarray) -> np.ndarray:
    spec = torch.stft(
        torch.as_tensor(wav, dtype=torch.float64),
        LSD_N_FFT,
        hop_length=LSD_HOP,
        window=torch.hann_window(LSD_N_FFT, dtype=torch.float64),
        center=True,
        return_complex=True,
    )
    return (spec.abs() ** 2).numpy().T  # [T, F]


def log_spectral_distance(generated, reference) -> float:
    """LSD of two 16 kHz waveforms [N] (see the module docstring)."""
    gen, ref = _pair(generated, reference)
    diff = np.log10(_power(ref) + LSD_EPS) - np.log10(_power(gen) + LSD_EPS)
    return float(np.sqrt((diff**2).mean(axis=1)).mean())


def psnr(generated, reference) -> float:
    """PSNR in dB of the generated log-mel against the reference log-mel (peak = the reference's range)."""
    gen, ref = _pair(generated, reference)
    mg, mr = _mel(gen), _mel(ref)
    mse = float(((mg - mr) ** 2).mean())
    peak = float(mr.max() - mr.min())
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(max(peak, 1e-12) ** 2 / mse))


def paired_metrics(generated, reference) -> dict[str, float]:
    """All three paired metrics of one pair of 16 kHz waveforms [N]."""
    return {
        "mel_distance": mel_distance(generated, reference),
        "lsd": log_spectral_distance(generated, reference),
        "psnr": psnr(generated, reference),
    }
