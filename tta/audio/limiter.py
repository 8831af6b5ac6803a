"""Keeping generated waveforms inside full scale.

A diffusion model's decoded audio has no fixed level: the shipped model's clips reach past +-1 for many prompts,
and a 16-bit WAV writer can only clip those samples (audible distortion). :func:`limit_peaks` instead scales a
waveform whose peak exceeds ``ceiling`` down as a whole, so its shape and dynamics are kept; waveforms under the
ceiling are returned untouched (bit for bit).
"""

from __future__ import annotations

import math

import torch

from tta.errors import InputError

DEFAULT_PEAK_LIMIT = 0.98  # -0.18 dBFS: room for the 16-bit writer's rounding


def check_peak_limit(ceiling) -> float | None:
    """``ceiling`` as a float in (0, 1] (None: no limiting); anything else is an :class:`InputError`."""
    if ceiling is None:
        return None
    try:
        value = float(ceiling)
    except (TypeError, ValueError) as err:
        raise InputError(f"peak_limit must be a number in (0, 1] or None, got {ceiling!r}") from err
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise InputError(f"peak_limit must be in (0, 1], got {value}")
    return value


def limit_peaks(audio: torch.Tensor, ceiling: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each waveform of ``audio`` [B, N] whose peak exceeds ``ceiling`` so that its peak is ``ceiling``.

    Returns:
        ``(audio, gains)``: the limited waveforms and the gain applied to each, [B] (1.0 where nothing changed;
        all ones when ``ceiling`` is None).
    """
    if audio.ndim != 2:
        raise ValueError(f"expected waveforms [B, N], got shape {tuple(audio.shape)}")
    ones = torch.ones(audio.shape[0], dtype=torch.float32, device=audio.device)
    if ceiling is None or audio.shape[1] == 0:
        return audio, ones
    peak = audio.detach().abs().amax(dim=1).float()
    over = peak > ceiling
    if not bool(over.any()):
        return audio, ones
    gains = torch.where(over, ceiling / peak.clamp_min(1e-12), ones)
    return audio * gains[:, None].to(audio.dtype), gains  # x * 1.0 is x exactly: quiet rows stay bit for bit
