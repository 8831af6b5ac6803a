"""Decoding one source file (bytes) to 16 kHz mono and encoding it as FLAC.

:func:`convert_clip` is a plain top-level function of picklable arguments so the corpus builder can run it
in a small process pool. It never raises for bad audio: it returns a :class:`Converted` whose ``error``
names the reason (``"unreadable audio"``, ``"empty audio"``, ``"too short"``, ``"silent"``).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from tta.audio.io import SAMPLE_RATE, load_audio, resample
from tta.errors import InputError


@dataclass(frozen=True)
class Converted:
    """Result of converting one clip.

    Attributes:
        flac: FLAC file bytes (16-bit, mono, ``sample_rate``), or None on error.
        duration: seconds after conversion (and cut).
        pcm_md5: md5 of the 16-bit samples, to catch the same recording stored twice in different formats.
        error: None, or the reason the clip was skipped.
        detail: a longer message for the error.
    """

    flac: bytes | None
    duration: float = 0.0
    pcm_md5: str = ""
    error: str | None = None
    detail: str = ""


def unwrap_ogg_in_wav(data: bytes) -> bytes:
    """The Ogg stream inside a RIFF/WAVE file that wraps one (format tags 0x674f-0x6771, "Vorbis in WAV",
    as some lmms samples are stored); other bytes are returned unchanged."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    pos = data.find(b"data", 12)
    if pos > 0 and data[pos + 8 : pos + 12] == b"OggS":
        return data[pos + 8 :]
    return data


def decode_bytes(data: bytes, suffix: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode an audio file held in memory to a mono float32 waveform [N] at ``sample_rate``.

    Tries libsndfile on the bytes first; falls back to :func:`tta.audio.io.load_audio` on a temporary file
    (which can use audioread for formats libsndfile lacks).

    Raises:
        InputError: the bytes are not decodable audio or hold no samples.
    """
    if not data:
        raise InputError("zero-length file")
    data = unwrap_ogg_in_wav(data)
    try:
        wav, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)  # [N, C]
    except Exception:
        fd, tmp = tempfile.mkstemp(suffix=suffix or ".bin")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return load_audio(tmp, sample_rate)
        finally:
            os.unlink(tmp)
    if wav.size == 0:
        raise InputError("audio file has no samples")
    mono = np.ascontiguousarray(wav.mean(axis=1), dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise InputError("audio holds NaN or infinite samples")
    return resample(mono, int(sr), sample_rate)


def encode_flac(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Encode a mono float waveform [N] as 16-bit FLAC bytes (clipped to [-1, 1])."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(wav, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def convert_clip(
    data: bytes,
    suffix: str,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    min_seconds: float = 0.05,
    silence_peak: float = 1e-4,
) -> Converted:
    """Decode, downmix, resample, cut to ``max_seconds`` and encode one clip as FLAC.

    Args:
        data: the source file bytes.
        suffix: the source file's extension (``".ogg"``), a hint for the fallback decoder.
        sample_rate: output rate (16 kHz).
        max_seconds: keep at most the first ``max_seconds`` (None: all).
        min_seconds: clips shorter than this are skipped as ``"too short"``.
        silence_peak: clips whose peak is below this are skipped as ``"silent"``.
    """
    if not data:
        return Converted(None, error="empty audio", detail="zero-length file")
    try:
        wav = decode_bytes(data, suffix, sample_rate)
    except InputError as err:
        reason = "empty audio" if "no samples" in str(err) else "unreadable audio"
        return Converted(None, error=reason, detail=str(err))
    if max_seconds is not None and wav.shape[0] > int(max_seconds * sample_rate):
        wav = wav[: int(max_seconds * sample_rate)]
    duration = wav.shape[0] / sample_rate
    if duration < min_seconds:
        return Converted(None, duration, error="too short", detail=f"{duration:.3f} s < {min_seconds} s")
    if float(np.abs(wav).max()) < silence_peak:
        return Converted(None, duration, error="silent", detail=f"peak below {silence_peak}")
    pcm = (np.clip(wav, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    return Converted(encode_flac(wav, sample_rate), duration, hashlib.md5(pcm).hexdigest())
