"""The audio an edit starts from: a file or an array, checked (readable, not too long or short) before decoding."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tta.audio.io import load_audio, resample
from tta.errors import InputError
from tta.sampling.shapes import MAX_DURATION_S

MAX_UPLOAD_BYTES = 200 * 2**20  # a minute of 16-bit stereo 48 kHz WAV is ~11 MB; more is not an edit input
MIN_DURATION_S = 0.1


def load_edit_audio(
    audio: str | os.PathLike | np.ndarray,
    sample_rate: int | None,
    target_rate: int,
    max_duration_s: float = MAX_DURATION_S,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> np.ndarray:
    """A mono waveform [N] at ``target_rate`` from a file path or an array.

    Args:
        audio: a path (wav/flac/ogg/mp3...) or a waveform [N] or [C, N] (channels averaged).
        sample_rate: the array's rate in Hz (required for arrays; ignored for files).
        target_rate: the model's rate.
        max_duration_s: longest accepted input; longer files are refused from their header, before decoding.
        max_bytes: largest accepted file.

    Raises:
        InputError: missing, unreadable or non-audio file, too long, too short, or not finite.
    """
    if isinstance(audio, (str, os.PathLike)):
        path = Path(audio)
        if not path.is_file():
            raise InputError(f"audio file not found: {path}")
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(
                f"{path.name} is {size / 2**20:.0f} MB; audio inputs are limited to {max_bytes // 2**20} MB"
            )
        _check_duration(_header_duration(path), max_duration_s, path.name)
        wav = load_audio(path, target_rate)
    else:
        if sample_rate is None:
            raise InputError("an audio array needs its sample rate")
        wav = np.asarray(audio, dtype=np.float32)
        if wav.ndim == 2:
            wav = wav.mean(axis=0)
        if wav.ndim != 1 or wav.size == 0:
            raise InputError(f"an audio array must be [N] or [C, N] samples, got shape {np.shape(audio)}")
        if not np.all(np.isfinite(wav)):
            raise InputError("the audio holds NaN or infinite samples")
        _check_duration(wav.size / sample_rate, max_duration_s, "the audio")
        wav = resample(wav, int(sample_rate), target_rate)
    _check_duration(wav.size / target_rate, max_duration_s, "the audio")
    return wav


def _header_duration(path: Path) -> float | None:
    """Duration from the file header (no decoding), or None when libsndfile cannot read the header."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:  # not a libsndfile format: load_audio tries its fallback and reports what is wrong
        return None
    return info.frames / info.samplerate if info.samplerate else None


def _check_duration(duration_s: float | None, max_duration_s: float, what: str) -> None:
    if duration_s is None:
        return
    if duration_s > max_duration_s:
        raise InputError(f"{what} lasts {duration_s:.1f} s; edits take at most {max_duration_s:g} s of audio")
    if duration_s < MIN_DURATION_S:
        raise InputError(f"{what} lasts {duration_s:.3f} s; edits need at least {MIN_DURATION_S:g} s of audio")
