"""Loudness in LUFS (ITU-R BS.1770-4 / EBU R 128) and true peak, and normalising clips to a target loudness.

* :func:`measure_loudness`: integrated, gated loudness of each clip (pyloudnorm's BS.1770-4 meter: K-weighting,
  400 ms blocks with 75 % overlap, absolute gate at -70 LUFS, relative gate 10 LU under the ungated mean). A
  clip shorter than one 400 ms block is measured as a single block of its own length (the same formula, no
  overlap); a silent clip (or one under the -70 LUFS gate) measures ``-inf``.
* :func:`true_peak`: the peak of the waveform 4x oversampled (BS.1770-4 Annex 2: the inter-sample peaks a DAC
  or a lossy codec reconstructs; ``scipy.signal.resample_poly``'s Kaiser-windowed FIR as the interpolator).
  Linear, not dBTP: ``20 log10`` of it is dBTP.
* :func:`normalize_loudness`: gain each clip to ``target_lufs``; where that would put its true peak over
  ``peak_limit``, a look-ahead true-peak limiter (below) brings the peaks down and the make-up gain is raised
  again, so the clip reaches the target loudness *and* keeps its true peak under the limit.

The limiter: the gain each sample needs (``limit / |oversampled peak|`` where that is under 1, with 0.5 dB of
margin for the interpolation between the gain's own samples), spread by a running minimum over 2W + 1 samples
and smoothed by a W-sample moving average (W = 5 ms), so the gain is down before every peak reaches it and
never changes faster than over 5 ms (no clicks; on sustained loud passages it works as a slow compressor). Up
to :data:`LIMITER_PASSES` passes raise the make-up gain by the loudness still missing (what the limiter took
away, or what the -70 LUFS gate changed by letting quiet blocks in or out); a last safety
scale keeps the true peak under the limit whatever happens, at the cost of a little loudness on extreme inputs
(then ``measure_loudness`` of the output shows what was reached).
"""

from __future__ import annotations

import math

import numpy as np

from tta.errors import InputError

DEFAULT_TARGET_LUFS = -23.0  # EBU R 128
TARGET_RANGE_LUFS = (-70.0, 0.0)  # the targets accepted; -23 (EBU R 128) and -14 / -16 (streaming) are usual
BLOCK_S = 0.4  # BS.1770-4 gating block
OVERSAMPLE = 4  # BS.1770-4 Annex 2
LIMITER_WINDOW_S = 0.005
LIMITER_MARGIN_DB = 0.5
LIMITER_PASSES = 6  # gain corrections: the gates and the limiter make loudness not quite linear in gain
LOUDNESS_TOLERANCE_LU = 0.05  # stop raising the make-up gain once this close


def check_target_lufs(value) -> float | None:
    """A loudness target as a float in [-70, 0] LUFS (None: no normalisation); anything else is an InputError."""
    if value is None:
        return None
    try:
        target = float(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"loudness target must be a number of LUFS, got {value!r}") from err
    low, high = TARGET_RANGE_LUFS
    if not (math.isfinite(target) and low <= target <= high):
        raise InputError(f"loudness target must be in [{low:g}, {high:g}] LUFS, got {target}")
    return target


def _rows(audio) -> tuple[np.ndarray, object]:
    """``audio`` [B, N] or [N] (numpy or torch) -> float64 numpy [B, N] and a function back to the input's kind."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of tta
        torch = None
    if torch is not None and isinstance(audio, torch.Tensor):
        like = audio
        rows = audio.detach().cpu().double().numpy()
        back = lambda x: torch.as_tensor(x, dtype=like.dtype, device=like.device).reshape(like.shape)  # noqa: E731
    else:
        arr = np.asarray(audio)
        dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float32
        rows = arr.astype(np.float64)
        back = lambda x: np.asarray(x, dtype=dtype).reshape(arr.shape)  # noqa: E731
    if rows.ndim not in (1, 2):
        raise InputError(f"expected waveforms [B, N] or [N], got shape {rows.shape}")
    rows = rows if rows.ndim == 2 else rows[None]
    if not np.all(np.isfinite(rows)):
        raise InputError("audio holds NaN or infinite samples")
    return rows, back


def _pyloudnorm():
    try:
        import pyloudnorm
    except ImportError as err:  # a dependency of tta; missing only in a hand-made environment
        raise InputError("loudness needs pyloudnorm (pip install pyloudnorm)") from err
    return pyloudnorm


def _loudness_1d(wav: np.ndarray, sample_rate: int) -> float:
    pyloudnorm = _pyloudnorm()

    if wav.size == 0 or not np.any(wav):
        return float("-inf")
    block = min(BLOCK_S, wav.size / sample_rate)  # a short clip: one block of its own length
    with np.errstate(divide="ignore"):
        return float(pyloudnorm.Meter(sample_rate, block_size=block).integrated_loudness(wav))


def measure_loudness(audio, sample_rate: int) -> np.ndarray:
    """Integrated loudness [B] in LUFS of waveforms ``audio`` [B, N] (or [N]); ``-inf`` for silence."""
    rows, _ = _rows(audio)
    return np.array([_loudness_1d(r, sample_rate) for r in rows])


def _oversampled(wav: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(wav, OVERSAMPLE, 1)


def _true_peak_1d(wav: np.ndarray) -> float:
    if wav.size == 0:
        return 0.0
    return float(max(np.abs(wav).max(), np.abs(_oversampled(wav)).max()))


def true_peak(audio) -> np.ndarray:
    """True peak [B] (linear, 4x oversampled, never under the sample peak) of waveforms [B, N] (or [N])."""
    rows, _ = _rows(audio)
    return np.array([_true_peak_1d(r) for r in rows])


def limiter_gain(wav: np.ndarray, limit: float, sample_rate: int) -> np.ndarray:
    """The limiter's gain [N] (<= 1) that keeps ``wav`` [N]'s oversampled peaks under ``limit`` (module doc)."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = limit * 10.0 ** (-LIMITER_MARGIN_DB / 20.0)
    env = np.abs(_oversampled(wav))[: wav.size * OVERSAMPLE]
    env = np.pad(env, (0, wav.size * OVERSAMPLE - env.size)).reshape(wav.size, OVERSAMPLE).max(axis=1)
    env = np.maximum(env, np.abs(wav))
    need = np.minimum(1.0, ceiling / np.maximum(env, 1e-12))
    width = max(1, int(round(LIMITER_WINDOW_S * sample_rate)))
    held = minimum_filter1d(need, size=2 * width + 1, mode="nearest")
    return np.minimum(uniform_filter1d(held, size=width, mode="nearest"), held.max())


def _normalize_1d(
    wav: np.ndarray, sample_rate: int, target: float, limit: float | None
) -> tuple[np.ndarray, float, float]:
    measured = _loudness_1d(wav, sample_rate)
    if not math.isfinite(measured):
        return wav, measured, 0.0
    gain_db = target - measured
    for _ in range(LIMITER_PASSES):
        out = wav * 10.0 ** (gain_db / 20.0)
        if limit is not None and _true_peak_1d(out) > limit:
            out = out * limiter_gain(out, limit, sample_rate)
        deficit = target - _loudness_1d(out, sample_rate)
        if not math.isfinite(deficit) or abs(deficit) <= LOUDNESS_TOLERANCE_LU:
            break
        gain_db += deficit
    if limit is None:
        return out, measured, gain_db
    peak = _true_peak_1d(out)
    if peak > limit:  # safety: the limiter's own interpolation overshoot on extreme inputs
        out = out * (limit / peak)
    return out, measured, gain_db


def normalize_loudness(
    audio, sample_rate: int, target_lufs: float = DEFAULT_TARGET_LUFS, peak_limit: float | None = None
):
    """Normalise each waveform of ``audio`` [B, N] (or [N]; numpy or torch) to ``target_lufs``.

    Args:
        sample_rate: Hz.
        target_lufs: integrated loudness to reach, in [-70, 0] LUFS.
        peak_limit: ceiling for the true peak (linear, in (0, 1]; e.g.
            :data:`tta.audio.limiter.DEFAULT_PEAK_LIMIT`); clips that would exceed it at the target go through
            the true-peak limiter of the module docstring. None: plain gain, peaks unchecked.

    Returns:
        ``(audio, measured_lufs, gain_db)``: the normalised waveforms (same kind, shape and dtype as the input),
        each clip's loudness before [B] (LUFS; ``-inf`` for a silent clip, which is returned as it is with a gain
        of 0 dB) and the static gain applied to it [B] (dB; the limiter's peak reduction comes on top of it).
    """
    from tta.audio.limiter import check_peak_limit

    target = check_target_lufs(target_lufs)
    if target is None:
        raise InputError("normalize_loudness needs a target (LUFS)")
    limit = check_peak_limit(peak_limit)
    rows, back = _rows(audio)
    results = [_normalize_1d(r, sample_rate, target, limit) for r in rows]
    out = np.stack([r[0] for r in results]) if results else rows
    return back(out), np.array([r[1] for r in results]), np.array([r[2] for r in results])


def loudness_summary(loudness, peaks) -> dict:
    """min / median / max of integrated loudness (finite values; ``silent`` counts the rest) and of true peak."""
    lufs = np.asarray(loudness, np.float64)
    peaks = np.asarray(peaks, np.float64)
    finite = lufs[np.isfinite(lufs)]
    out = {"clips": int(lufs.size), "silent": int(lufs.size - finite.size)}
    for name, values in (("lufs", finite), ("true_peak_dbtp", 20.0 * np.log10(np.maximum(peaks, 1e-10)))):
        if values.size:
            out.update({f"{name}_min": float(values.min()), f"{name}_median": float(np.median(values))})
            out[f"{name}_max"] = float(values.max())
    return out
