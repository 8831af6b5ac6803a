"""Waveform augmentations for making training examples on the fly (all numpy, all driven by a given rng).

Every function takes a mono float32 waveform of shape [N] and a ``numpy.random.Generator`` and returns a new
float32 array; none keeps state, so an example is reproducible from its rng seed alone.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve


def crop_or_repeat(wav: np.ndarray, length: int, rng: np.random.Generator, random_offset: bool = True) -> np.ndarray:
    """Exactly ``length`` samples from ``wav`` [N].

    Longer clips are cropped at a random offset (or from the start). Shorter clips are either tiled with
    short random silences between repeats or placed once at a random position in silence (half the time
    each), so a 0.3 s bark can fill a 5 s example.
    """
    n = wav.shape[0]
    if n >= length:
        start = int(rng.integers(0, n - length + 1)) if random_offset else 0
        return wav[start : start + length].astype(np.float32, copy=True)
    out = np.zeros(length, dtype=np.float32)
    if rng.random() < 0.5:
        pos = int(rng.integers(0, length - n + 1)) if random_offset else 0
        out[pos : pos + n] = wav
        return out
    pos = int(rng.integers(0, max(1, n // 2))) if random_offset else 0
    while pos < length:
        take = min(n, length - pos)
        out[pos : pos + take] = wav[:take]
        pos += n + int(rng.integers(0, max(1, length // 8)))
    return out


def pitch_shift(wav: np.ndarray, semitones: float) -> np.ndarray:
    """Shift pitch (and speed) by ``semitones`` by resampling with linear interpolation: [N] -> [N / r]."""
    ratio = 2.0 ** (semitones / 12.0)
    n_out = max(1, int(round(wav.shape[0] / ratio)))
    positions = np.arange(n_out, dtype=np.float64) * ratio
    return np.interp(positions, np.arange(wav.shape[0]), wav).astype(np.float32)


def random_eq(wav: np.ndarray, rng: np.random.Generator, sample_rate: int, max_db: float = 6.0) -> np.ndarray:
    """A smooth random EQ: gains of up to ±``max_db`` at a few log-spaced frequencies, interpolated."""
    spec = np.fft.rfft(wav)
    freqs = np.fft.rfftfreq(wav.shape[0], 1.0 / sample_rate)
    anchors = np.geomspace(50.0, sample_rate / 2, 6)
    gains_db = rng.uniform(-max_db, max_db, size=anchors.shape[0])
    curve_db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(anchors), gains_db)
    return np.fft.irfft(spec * 10.0 ** (curve_db / 20.0), n=wav.shape[0]).astype(np.float32)


def random_reverb(wav: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Convolve with a synthetic room: exponentially decaying noise, RT60 0.2-1.0 s, random wet/dry mix."""
    rt60 = rng.uniform(0.2, 1.0)
    n_ir = int(rt60 * sample_rate)
    t = np.arange(n_ir) / sample_rate
    ir = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    ir[0] = 1.0
    ir /= np.sqrt(np.sum(ir**2))
    wet = fftconvolve(wav, ir)[: wav.shape[0]]
    mix = rng.uniform(0.2, 0.6)
    return ((1.0 - mix) * wav + mix * wet).astype(np.float32)


def augment(wav: np.ndarray, rng: np.random.Generator, sample_rate: int, pitch: bool = True) -> np.ndarray:
    """Random pitch (±2 semitones, p=0.3), EQ (p=0.3) and reverb (p=0.2) on a whole waveform [N] -> [N'].

    Pitch changes the length; crop afterwards. :func:`crop_augmented` does the same on a crop, far cheaper
    for long recordings (what :class:`~tta.data.dataset.CorpusDataset` uses).
    """
    if pitch and rng.random() < 0.3:
        wav = pitch_shift(wav, rng.uniform(-2.0, 2.0))
    if rng.random() < 0.3:
        wav = random_eq(wav, rng, sample_rate)
    if rng.random() < 0.2:
        wav = random_reverb(wav, rng, sample_rate)
    return wav


def crop_augmented(
    wav: np.ndarray, length: int, rng: np.random.Generator, sample_rate: int, augment: bool = True
) -> np.ndarray:
    """A training excerpt of exactly ``length`` samples from ``wav`` [N], augmented when ``augment``.

    Pitch (±2 semitones, p=0.3) is applied to a crop just long enough to give ``length`` samples after
    resampling, so a 60 s track costs no more than a 5 s one; then the crop/repeat to ``length``
    (:func:`crop_or_repeat`), then EQ (p=0.3) and reverb (p=0.2). Without ``augment``: the first
    ``length`` samples (short clips repeated/padded), no effects.
    """
    semitones = float(rng.uniform(-2.0, 2.0)) if augment and rng.random() < 0.3 else 0.0
    need = int(np.ceil(length * 2.0 ** (semitones / 12.0))) + 1
    if wav.shape[0] > need:
        start = int(rng.integers(0, wav.shape[0] - need + 1)) if augment else 0
        wav = wav[start : start + need]
    if semitones:
        wav = pitch_shift(wav, semitones)
    wav = crop_or_repeat(wav, length, rng, random_offset=augment)
    if augment and rng.random() < 0.3:
        wav = random_eq(wav, rng, sample_rate)
    if augment and rng.random() < 0.2:
        wav = random_reverb(wav, rng, sample_rate)
    return wav


def rms(wav: np.ndarray, eps: float = 1e-8) -> float:
    """Root-mean-square level of [N]."""
    return float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)) + eps))


def mix_at_snr(foreground: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    """``foreground + background``, the background scaled so the foreground is ``snr_db`` dB above it. [N]."""
    scale = rms(foreground) / (rms(background) * 10.0 ** (snr_db / 20.0))
    return (foreground + scale * background).astype(np.float32)
