"""What an edit regenerates: time ranges (inpainting), mel bins above a cut-off (super-resolution), or both.

A region is the product "regenerated times x regenerated mel bins"; everything else is kept. Inpainting alone
regenerates every bin inside its time ranges; super-resolution alone regenerates the bins above the cut-off at
every time (AudioLDM treats it as inpainting along frequency); both together regenerate the high band inside
the ranges only. Masks come in two resolutions: mel cells [T, F] (the final paste, with soft edges) and latent
cells [H, W] = [T / f, F / f] for the VAE factor ``f`` (the per-step blend; a latent cell is kept only when all
of its mel cells are).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

from tta.errors import InputError


def parse_range(text: str) -> tuple[float, float]:
    """``"1.0:2.5"`` -> ``(1.0, 2.5)`` seconds (start < end, both finite and >= 0)."""
    match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*:\s*([0-9.eE+-]+)\s*", str(text))
    try:
        start, end = float(match[1]), float(match[2])  # type: ignore[index]
    except (TypeError, ValueError) as err:
        raise InputError(f"a time range is START:END in seconds (e.g. 1.0:2.5), got {text!r}") from err
    return start, end


@dataclass(frozen=True)
class EditRegion:
    """The part of the input an edit regenerates; the rest is kept.

    Args:
        ranges: time ranges ``(start_s, end_s)`` to regenerate; None: all of the time axis.
        above_hz: regenerate the mel bins reaching above this frequency; None: all bins.
    """

    ranges: tuple[tuple[float, float], ...] | None = None
    above_hz: float | None = None

    def check(self, duration_s: float, sample_rate: int) -> EditRegion:
        """Validate against an input of ``duration_s`` seconds; returns the region with sorted ranges."""
        ranges = None
        if self.ranges is not None:
            if not self.ranges:
                raise InputError("give at least one time range to regenerate")
            ranges = []
            for start, end in self.ranges:
                start, end = float(start), float(end)
                if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
                    raise InputError(f"a time range needs 0 <= start < end, got {start:g}:{end:g}")
                if start >= duration_s:
                    raise InputError(f"time range {start:g}:{end:g} starts after the input's end ({duration_s:.3f} s)")
                ranges.append((start, min(end, duration_s)))
            ranges = tuple(sorted(ranges))
        if self.above_hz is not None:
            nyquist = sample_rate / 2
            if not math.isfinite(self.above_hz) or not 0 < self.above_hz < nyquist:
                raise InputError(f"the cut-off must be between 0 and {nyquist:g} Hz, got {self.above_hz:g}")
        return EditRegion(ranges, None if self.above_hz is None else float(self.above_hz))

    def mel_masks(self, num_frames: int, frame_rate: float, bin_top_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Regenerated mel frames [T] and mel bins [F] (bool).

        Args:
            num_frames: T, mel frames (padding included).
            frame_rate: mel frames per second.
            bin_top_hz: the highest frequency each mel filter reaches [F] (see :func:`mel_bin_tops`).
        """
        times = np.ones(num_frames, dtype=bool)
        if self.ranges is not None:
            times[:] = False
            for start, end in self.ranges:
                times[int(math.floor(start * frame_rate)) : int(math.ceil(end * frame_rate))] = True
        bins = np.ones(len(bin_top_hz), dtype=bool)
        if self.above_hz is not None:
            bins = np.asarray(bin_top_hz) > self.above_hz
        return times, bins


def keep_weights(regen_t: np.ndarray, regen_f: np.ndarray, feather_t: int = 0, feather_f: int = 0) -> torch.Tensor:
    """Weight of the input in each mel cell [T, F]: 1 where kept, 0 where regenerated.

    With ``feather_*`` > 0 the weight ramps down linearly over that many regenerated cells next to a kept one,
    so the regenerated part fades in from the input at its borders; kept cells always keep weight 1.
    """
    w_t, w_f = _ramp(regen_t, feather_t), _ramp(regen_f, feather_f)
    return torch.from_numpy(1.0 - np.outer(1.0 - w_t, 1.0 - w_f)).float()


def latent_keep(regen_t: np.ndarray, regen_f: np.ndarray, factor: int) -> torch.Tensor:
    """Kept latent cells [H, W] (float 0/1): a cell is kept when none of its ``factor`` x ``factor`` mel cells
    is regenerated (``T`` and ``F`` must be multiples of ``factor``)."""
    keep_t = ~regen_t.reshape(-1, factor).any(axis=1)
    keep_f = ~regen_f.reshape(-1, factor).any(axis=1)
    return torch.from_numpy(keep_t[:, None] | keep_f[None, :]).float()


def mel_bin_tops(mel_basis: torch.Tensor, sample_rate: int, n_fft: int) -> np.ndarray:
    """The highest frequency (Hz) each mel filter of ``mel_basis`` [F, n_fft // 2 + 1] has weight at [F]."""
    basis = mel_basis.detach().cpu().numpy()
    last = np.array([np.flatnonzero(row > 0).max(initial=0) for row in basis])
    return last * sample_rate / n_fft


def detect_cutoff_hz(wav: np.ndarray, sample_rate: int, floor_db: float = -70.0, n_fft: int = 1024) -> float:
    """Estimate where an input's spectrum ends: the highest frequency whose power, smoothed over a few bins, is
    within ``floor_db`` of the strongest frequency. The power is the median over the active frames (within 30 dB
    of the loudest one), so silences, clicks and the file's abrupt start and end do not smear the estimate. An
    8 kHz recording resampled to 16 kHz gives ~4000 Hz; a full-band 16 kHz recording ~8000 Hz.

    Args:
        wav: waveform [N] at ``sample_rate``.
    """
    x = torch.as_tensor(np.asarray(wav, dtype=np.float32)).reshape(-1).double()
    if x.numel() < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.numel()))
    window = torch.hann_window(n_fft, dtype=torch.float64)
    spec = torch.stft(x, n_fft, hop_length=n_fft // 4, window=window, center=False, return_complex=True)
    frames = spec.abs().pow(2)  # [n_fft // 2 + 1, frames]
    energy = frames.sum(dim=0)
    if energy.max() <= 0:
        raise InputError("the input is silent: no bandwidth to detect (pass a cut-off frequency)")
    power = frames[:, energy >= energy.max() * 1e-3].median(dim=1).values.numpy()
    power = np.convolve(power, np.ones(5) / 5, mode="same")
    power[0] = 0.0  # DC says nothing about the bandwidth
    db = 10 * np.log10(np.maximum(power, 1e-300) / power.max())
    return float(np.flatnonzero(db > floor_db).max() * sample_rate / n_fft)


def _ramp(regen: np.ndarray, feather: int) -> np.ndarray:
    """1 on kept cells, 1 - d / (feather + 1) on regenerated cells at distance d <= feather from a kept one."""
    weights = (~regen).astype(np.float64)
    kept = np.flatnonzero(~regen)
    if feather <= 0 or kept.size == 0:
        return weights
    idx = np.flatnonzero(regen)
    pos = np.clip(np.searchsorted(kept, idx), 1, max(kept.size - 1, 1))
    dist = np.minimum(np.abs(idx - kept[pos - 1]), np.abs(idx - kept[np.minimum(pos, kept.size - 1)]))
    weights[idx] = np.clip(1.0 - dist / (feather + 1), 0.0, 1.0)
    return weights
