"""Spectral losses shared by the vocoder and VAE stages."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def stft_magnitude(wav: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """Waveform [B, N] -> magnitude STFT [B, n_fft // 2 + 1, frames] (Hann window, centred)."""
    window = torch.hann_window(win, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(wav, n_fft, hop_length=hop, win_length=win, window=window, center=True, return_complex=True)
    return spec.abs().clamp(min=1e-7)


def multi_resolution_stft_loss(
    est: torch.Tensor, ref: torch.Tensor, resolutions: list[tuple[int, int, int]] | tuple = ()
) -> torch.Tensor:
    """Mean over ``(n_fft, hop, win)`` resolutions of spectral convergence + L1 of log magnitudes
    (Yamamoto et al. 2020, "Parallel WaveGAN", eq. 4-6)."""
    total = est.new_zeros(())
    for n_fft, hop, win in resolutions:
        s_est, s_ref = stft_magnitude(est, n_fft, hop, win), stft_magnitude(ref, n_fft, hop, win)
        sc = torch.linalg.norm(s_ref - s_est, dim=(1, 2)) / torch.linalg.norm(s_ref, dim=(1, 2)).clamp(min=1e-7)
        total = total + sc.mean() + F.l1_loss(torch.log(s_est), torch.log(s_ref))
    return total / max(1, len(resolutions))
