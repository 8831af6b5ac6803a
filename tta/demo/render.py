"""What the demo shows besides the audio: a spectrogram image and the CLI line that reproduces a result."""

from __future__ import annotations

import shlex
from typing import Any

import numpy as np
import torch

# A dark-to-bright palette (black, purple, red, orange, pale yellow) for log-mel images, as RGB anchors.
_PALETTE = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], dtype=np.float64)


def spectrogram_image(wav: np.ndarray, sample_rate: int, db_range: float = 80.0, bin_height: int = 3) -> np.ndarray:
    """An RGB image (uint8 [n_mels * bin_height, T, 3], low frequencies at the bottom) of the log-mel of ``wav``.

    Args:
        wav: waveform [N] at ``sample_rate``.
        db_range: dynamic range shown below the loudest cell.
        bin_height: pixel rows per mel bin.
    """
    from tta.audio.mel import MelSpectrogram

    mel = MelSpectrogram(sample_rate=sample_rate, hop_length=sample_rate // 100, f_max=sample_rate / 2)
    x = torch.as_tensor(np.asarray(wav, dtype=np.float32)).reshape(-1)
    if x.numel() <= mel.n_fft // 2:
        x = torch.nn.functional.pad(x, (0, mel.n_fft // 2 + mel.hop_length - x.numel()))
    with torch.no_grad():
        logmel = mel(x).numpy().T  # [n_mels, T], natural log
    db = logmel * (20.0 / np.log(10.0))
    level = np.clip((db - db.max() + db_range) / db_range, 0.0, 1.0)[::-1]
    pos = level * (len(_PALETTE) - 1)
    low = np.minimum(pos.astype(int), len(_PALETTE) - 2)
    frac = (pos - low)[..., None]
    rgb = _PALETTE[low] * (1.0 - frac) + _PALETTE[low + 1] * frac
    return np.repeat(rgb, bin_height, axis=0).round().astype(np.uint8)


def cli_line(command: list[str], options: dict[str, Any]) -> str:
    """A shell-quoted command line: ``command`` words, then ``--key value`` per option (None skipped, list values
    repeat the option, True is a bare flag)."""
    words = list(command)
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is None or value is False:
            continue
        if value is True:
            words.append(flag)
        else:
            for item in value if isinstance(value, (list, tuple)) else [value]:
                words += [flag, f"{item:g}" if isinstance(item, float) else str(item)]
    return shlex.join(words)
