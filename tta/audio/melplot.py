"""A log-mel spectrogram of a waveform as a PNG (matplotlib, imported when called)."""

from __future__ import annotations

import io
import os

import numpy as np
import torch


def save_mel_png(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = 16000, title: str = "") -> None:
    """Write the AudioLDM log-mel (64 bins, 10 ms frames) of ``audio`` [N] to ``path`` as a PNG, written atomically:
    time on the x axis (seconds), mel bins on the y axis, the natural-log magnitude as colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tta.audio.io import write_atomic
    from tta.audio.mel import MelSpectrogram

    wav = torch.as_tensor(np.asarray(audio, dtype=np.float32).reshape(-1))
    mel_module = MelSpectrogram(sample_rate=sample_rate, f_max=sample_rate / 2)
    if wav.numel() <= mel_module.n_fft // 2:  # too short for a frame: pad with silence
        wav = torch.nn.functional.pad(wav, (0, mel_module.n_fft // 2 + 1 - wav.numel()))
    with torch.no_grad():
        mel = mel_module(wav).numpy().T  # [n_mels, T]
    seconds = mel.shape[1] * mel_module.hop_length / sample_rate
    fig, ax = plt.subplots(figsize=(max(4.0, min(12.0, 1.2 * seconds + 2)), 3))
    image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, mel.shape[0]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="ln magnitude")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
