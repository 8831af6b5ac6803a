"""VGGish (Hershey et al. 2017, arXiv:1609.09430) as an embedding backend, from torchvggish's published weights.

Front-end (the AudioSet release's, at 16 kHz): 25 ms frames every 10 ms (400 / 160 samples, no padding),
periodic Hann window, |rfft| with 512 points, 64 HTK-mel bands from 125 to 7500 Hz (the DC bin left out),
``log(mel + 0.01)``; the log-mel is cut into non-overlapping 0.96 s examples of 96 frames. A clip shorter
than one example is zero-padded to one (torchvggish returns no example for it).

Network: VGG (conv 64, pool, conv 128, pool, 2x conv 256, pool, 2x conv 512, pool) and three linear layers to
128 dimensions. As frechet-audio-distance and fadtk use it, the embedding is taken before the last ReLU and
without the PCA/quantisation post-processing. The weight file is ``vggish-10086976.pth`` (a plain state
dict with ``features.*`` and ``embeddings.*`` keys).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from einops import rearrange
from torch import nn

from tta.evaluation.backends.base import ClipFeatures, EmbeddingBackend, load_published, module_hash

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 64
MEL_MIN_HZ, MEL_MAX_HZ = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s
PUBLISHED = "vggish-10086976.pth from torchvggish"


def htk_mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def vggish_mel_matrix(n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """[n_fft // 2 + 1, 64] triangular HTK-mel weights; the DC bin gets no weight."""
    bins_mel = htk_mel(np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1))
    edges = np.linspace(htk_mel(MEL_MIN_HZ), htk_mel(MEL_MAX_HZ), N_MELS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    return weights


def vggish_examples(wav: np.ndarray) -> torch.Tensor:
    """Waveform [N] at 16 kHz -> log-mel examples [E, 1, 96, 64], float32 (E >= 1)."""
    x = torch.as_tensor(np.asarray(wav, np.float64).reshape(-1))
    need = WINDOW + (EXAMPLE_FRAMES - 1) * HOP
    if x.numel() < need:
        x = torch.nn.functional.pad(x, (0, need - x.numel()))
    frames = x.unfold(0, WINDOW, HOP)  # [T, 400]
    window = 0.5 - 0.5 * torch.cos(2 * torch.pi * torch.arange(WINDOW, dtype=torch.float64) / WINDOW)
    magnitude = torch.fft.rfft(frames * window, n=N_FFT).abs()  # [T, 257]
    logmel = torch.log(magnitude @ torch.from_numpy(vggish_mel_matrix()) + LOG_OFFSET)  # [T, 64]
    n_examples = logmel.shape[0] // EXAMPLE_FRAMES
    examples = logmel[: n_examples * EXAMPLE_FRAMES].reshape(n_examples, 1, EXAMPLE_FRAMES, N_MELS)
    return examples.float()


def _vgg_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 1
    for width in (64, "pool", 128, "pool", 256, 256, "pool", 512, 512, "pool"):
        if width == "pool":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers)


class VGGish(nn.Module):
    """Log-mel examples [E, 1, 96, 64] -> embeddings [E, 128] (before the last ReLU, no PCA)."""

    def __init__(self):
        super().__init__()
        self.features = _vgg_features()
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096),
            nn.ReLU(True),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Linear(4096, 128),
        )

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        x = self.features(examples)  # [E, 512, 6, 4]
        x = rearrange(x, "e c h w -> e (h w c)")  # TensorFlow's channels-last flattening order
        return self.embeddings(x)


class VGGishBackend(EmbeddingBackend):
    """``--backend vggish --backend-weights vggish-10086976.pth``: frames [E, 128], one per 0.96 s; no classifier."""

    name = "vggish"
    sample_rate = SAMPLE_RATE

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu", model: VGGish | None = None):
        if model is None:
            model = VGGish()
            self.weights_hash = load_published(model, weights, self.name, PUBLISHED)
        else:
            self.weights_hash = module_hash(model)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def features(self, wav: np.ndarray) -> ClipFeatures:
        frames = self.model(vggish_examples(wav).to(self.device)).cpu().numpy()
        return ClipFeatures(frames.astype(np.float32), None)
