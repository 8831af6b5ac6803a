"""Audio front-end: file I/O, resampling, AudioLDM's waveform normalisation and log-mel."""

from tta.audio.io import SAMPLE_RATE, load_audio, normalize_waveform, resample, save_audio, write_atomic
from tta.audio.mel import MelSpectrogram

__all__ = [
    "SAMPLE_RATE",
    "MelSpectrogram",
    "load_audio",
    "normalize_waveform",
    "resample",
    "save_audio",
    "write_atomic",
]
