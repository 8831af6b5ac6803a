"""Reading, resampling, normalising and writing audio files."""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from tta.errors import InputError

SAMPLE_RATE = 16000


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a float waveform [..., N] with soxr (through librosa); a no-op when the rates match."""
    if orig_sr == target_sr:
        return wav
    import librosa

    return librosa.resample(wav, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read wav/flac/ogg/mp3 (anything libsndfile or audioread decodes), downmix to mono, resample.

    Returns:
        np.ndarray: float32 waveform of shape [N] at ``sample_rate``.

    Raises:
        InputError: the file is missing, unreadable, or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"audio file not found: {path}")
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [N, C]
        wav = wav.mean(axis=1)
    except Exception as sf_err:  # libsndfile cannot read some mp3/m4a files: fall back to audioread
        try:
            import librosa

            with warnings.catch_warnings():  # librosa warns that it falls back to audioread: that is the plan
                warnings.simplefilter("ignore")
                wav, sr = librosa.load(str(path), sr=None, mono=True)
        except Exception:
            raise InputError(f"cannot read audio file {path}: {sf_err}") from sf_err
    if wav.size == 0:
        raise InputError(f"audio file has no samples: {path}")
    if not np.all(np.isfinite(wav)):
        raise InputError(f"audio file holds NaN or infinite samples: {path}")
    return resample(np.ascontiguousarray(wav, dtype=np.float32), int(sr), sample_rate)


def normalize_waveform(wav: np.ndarray, peak: float = 0.5, eps: float = 1e-8) -> np.ndarray:
    """AudioLDM's pre-processing: remove the mean, then scale the peak to ``peak`` (0.5)."""
    wav = wav - wav.mean(axis=-1, keepdims=True)
    return (wav / (np.abs(wav).max(axis=-1, keepdims=True) + eps) * peak).astype(np.float32)


def save_audio(path: str | os.PathLike, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a mono float waveform [N] as 16-bit PCM WAV, atomically (temp file, then rename).

    A failure leaves no partial file at ``path``. Samples past full scale are clipped, with a warning that counts
    them (the pipeline's ``peak_limit`` keeps generated audio inside it).
    """
    path = Path(path)
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(wav)):
        raise InputError(f"refusing to write NaN/inf samples to {path}")
    over = int(np.count_nonzero(np.abs(wav) > 1.0 + 2**-16))  # less than half a 16-bit step loses nothing
    if over:
        warnings.warn(
            f"{path.name}: {over} samples past full scale (peak {np.abs(wav).max():.2f}) clipped to +-1",
            stacklevel=2,
        )
    buf = io.BytesIO()
    sf.write(buf, np.clip(wav, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return write_atomic(path, buf.getvalue())


def umask() -> int:
    """The process's file-creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write bytes or text to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
