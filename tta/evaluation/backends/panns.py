"""PANNs CNN14 (Kong et al. 2020, arXiv:1912.10211) as an embedding backend and AudioSet classifier.

Loads the published ``Cnn14_mAP=0.431.pth`` (a dict whose ``model`` key is the state dict), which runs at
32 kHz: power STFT (n_fft 1024, hop 320, periodic Hann, centred with reflect padding), 64 slaney-mel bands
50-14000 Hz (librosa's filters), ``10 log10(max(mel, 1e-10))``, batch norm over the mel bands, six conv
blocks (two 3x3 conv + BN + ReLU, 2x2 average pooling but the last), mean over frequency, max + mean over
time, ``fc1`` + ReLU -> the 2048-d embedding, ``fc_audioset`` -> 527 AudioSet logits.

The checkpoint's front-end tensors (``spectrogram_extractor.*``, ``logmel_extractor.*``: the STFT as
convolution kernels and the mel matrix) are recomputed here with ``torch.stft`` and librosa, not loaded.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tta.evaluation.backends.base import ClipFeatures, EmbeddingBackend, load_published, module_hash

PUBLISHED = "Cnn14_mAP=0.431.pth from PANNs"
FRONT_END_KEYS = ("spectrogram_extractor.", "logmel_extractor.")
NUM_AUDIOSET_CLASSES = 527
MIN_FRAMES = 32


class ConvBlock(nn.Module):
    """[B, C_in, T, F] -> [B, C_out, T / p, F / p]: two 3x3 conv + BN + ReLU, then p x p average pooling."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: int = 2) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class Cnn14(nn.Module):
    """Waveform [B, N] at ``sample_rate`` -> (embedding [B, 2048], logits [B, classes_num])."""

    def __init__(
        self,
        sample_rate: int = 32000,
        window_size: int = 1024,
        hop_size: int = 320,
        mel_bins: int = 64,
        fmin: float = 50.0,
        fmax: float = 14000.0,
        classes_num: int = NUM_AUDIOSET_CLASSES,
    ):
        super().__init__()
        self.sample_rate, self.window_size, self.hop_size = sample_rate, window_size, hop_size
        mel = librosa.filters.mel(sr=sample_rate, n_fft=window_size, n_mels=mel_bins, fmin=fmin, fmax=fmax)
        self.register_buffer("mel_basis", torch.from_numpy(mel).float(), persistent=False)  # [mel_bins, F]
        self.register_buffer("window", torch.hann_window(window_size, periodic=True), persistent=False)
        self.bn0 = nn.BatchNorm2d(mel_bins)
        widths = (1, 64, 128, 256, 512, 1024, 2048)
        for i in range(6):
            self.add_module(f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, classes_num)

    def logmel(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform [B, N] -> log-mel [B, 1, T, mel_bins] in dB (T = N // hop + 1)."""
        spec = torch.stft(
            wav,
            self.window_size,
            hop_length=self.hop_size,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spec.real**2 + spec.imag**2  # [B, F, T]
        mel = torch.matmul(self.mel_basis, power).transpose(1, 2)  # [B, T, mel_bins]
        return (10.0 * torch.log10(torch.clamp(mel, min=1e-10))).unsqueeze(1)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.logmel(wav)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # normalise each mel band
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, pool=2 if i < 6 else 1)
        x = x.mean(dim=3)  # [B, 2048, T']
        x = x.amax(dim=2) + x.mean(dim=2)
        embedding = F.relu(self.fc1(x))
        return embedding, self.fc_audioset(embedding)


def audioset_labels(weights: Path | None) -> list[str]:
    """AudioSet class names from ``class_labels_indices.csv`` beside the weights, else ``audioset_<i>``."""
    table = weights.parent / "class_labels_indices.csv" if weights is not None else None
    if table is not None and table.is_file():
        rows = list(csv.reader(table.read_text().splitlines()))[1:]
        if len(rows) == NUM_AUDIOSET_CLASSES:
            return [r[2] for r in rows]
    return [f"audioset_{i}" for i in range(NUM_AUDIOSET_CLASSES)]


def _network_state(checkpoint: dict) -> dict:
    """The checkpoint's ``model`` state dict without the front-end tensors (recomputed here)."""
    if not isinstance(checkpoint, dict):
        return {}  # -> "missing keys": not a CNN14 file
    state = checkpoint.get("model", checkpoint)
    if not isinstance(state, dict):
        return {}
    return {k: v for k, v in state.items() if not k.startswith(FRONT_END_KEYS)}


class PannsBackend(EmbeddingBackend):
    """``--backend panns --backend-weights Cnn14_mAP=0.431.pth``: frames [1, 2048]; 527 AudioSet logits."""

    name = "panns"
    sample_rate = 32000
    classifier = "PANNs CNN14 AudioSet logits (527 classes)"

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu", model: Cnn14 | None = None):
        if model is None:
            model = Cnn14()
            self.weights_hash = load_published(model, weights, self.name, PUBLISHED, select=_network_state)
        else:
            self.weights_hash = module_hash(model)
        self.sample_rate = model.sample_rate
        self.class_names = audioset_labels(Path(weights).expanduser() if weights is not None else None)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def features(self, wav: np.ndarray) -> ClipFeatures:
        x = torch.as_tensor(np.asarray(wav, np.float32).reshape(1, -1), device=self.device)
        need = MIN_FRAMES * self.model.hop_size  # five 2x2 poolings need 32 frames; zero-pad shorter clips
        if x.shape[1] < need:
            x = F.pad(x, (0, need - x.shape[1]))
        embedding, logits = self.model(x)
        return ClipFeatures(embedding.cpu().numpy().astype(np.float32), logits[0].cpu().numpy().astype(np.float32))
