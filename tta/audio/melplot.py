"""The one spectrogram renderer: a waveform's log-mel as an RGB image (the demo's panel, TensorBoard's images)
or as a PNG with axes (``tta generate --mel-png``)."""

from __future__ import annotations

import io
import os

import numpy as np
import torch

# A dark-to-bright palette (black, purple, red, orange, pale yellow), as RGB anchors.
_PALETTE = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], dtype=np.float64)


def log_mel(wav, sample_rate: int, hop_length: int | None = None) -> np.ndarray:
    """The AudioLDM log-mel (64 bins, natural log) of ``wav`` [N]: [n_mels, T] (``hop_length`` default 10 ms);
    an input too short for one frame is padded with silence."""
    from tta.audio.mel import MelSpectrogram

    mel = MelSpectrogram(sample_rate=sample_rate, hop_length=hop_length or sample_rate // 100, f_max=sample_rate / 2)
    x = torch.as_tensor(np.asarray(wav, dtype=np.float32)).reshape(-1)
    if x.numel() <= mel.n_fft // 2:
        x = torch.nn.functional.pad(x, (0, mel.n_fft // 2 + mel.hop_length - x.numel()))
    with torch.no_grad():
        return mel(x).numpy().T


def colour_image(values, low: float | None = None, high: float | None = None, bin_height: int = 1) -> np.ndarray:
    """[H, W] values -> RGB uint8 [H * bin_height, W, 3] in the palette, row 0 drawn at the bottom; values are
    scaled from ``low`` to ``high`` (default their min and max) and clipped."""
    a = np.asarray(torch.as_tensor(values, dtype=torch.float64).detach().cpu())
    low = float(a.min()) if low is None else low
    high = float(a.max()) if high is None else high
    level = np.clip((a - low) / max(high - low, 1e-8), 0.0, 1.0)[::-1]
    pos = level * (len(_PALETTE) - 1)
    lo = np.minimum(pos.astype(int), len(_PALETTE) - 2)
    frac = (pos - lo)[..., None]
    rgb = _PALETTE[lo] * (1.0 - frac) + _PALETTE[lo + 1] * frac
    return np.repeat(rgb, bin_height, axis=0).round().astype(np.uint8)


def spectrogram_image(wav: np.ndarray, sample_rate: int, db_range: float = 80.0, bin_height: int = 3) -> np.ndarray:
    """An RGB image (uint8 [n_mels * bin_height, T, 3], low frequencies at the bottom) of the log-mel of ``wav``
    [N], showing ``db_range`` dB below its loudest cell."""
    db = log_mel(wav, sample_rate) * (20.0 / np.log(10.0))
    return colour_image(db, db.max() - db_range, db.max(), bin_height)


def save_mel_png(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = 16000, title: str = "") -> None:
    """Write :func:`spectrogram_image` of ``audio`` [N] to ``path`` as a PNG with a time axis (seconds) and mel
    bins, written atomically (matplotlib, imported when called)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tta.audio.io import write_atomic

    image = spectrogram_image(audio, sample_rate, bin_height=1)
    seconds = len(np.asarray(audio).reshape(-1)) / sample_rate
    fig, ax = plt.subplots(figsize=(max(4.0, min(12.0, 1.2 * seconds + 2)), 3))
    ax.imshow(image, aspect="auto", extent=(0, seconds, 0, image.shape[0]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def save_mel_panels(path: str | os.PathLike, panels: list[tuple[str, np.ndarray]], sample_rate: int = 16000) -> None:
    """Write several waveforms' spectrograms side by side (one titled panel each, one colour scale per panel) to
    ``path`` as a PNG, atomically: e.g. a real recording beside generations before and after a fine-tune."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tta.audio.io import write_atomic

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False)
    for ax, (title, audio) in zip(axes[0], panels, strict=True):
        image = spectrogram_image(audio, sample_rate, bin_height=1)
        seconds = len(np.asarray(audio).reshape(-1)) / sample_rate
        ax.imshow(image, aspect="auto", extent=(0, seconds, 0, image.shape[0]))
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("time (s)", fontsize=8)
    axes[0][0].set_ylabel("mel bin", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
