"""Tiny fixtures for the trainer tests: a toy regression stage and a synthetic labelled-sound dataset."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import Dataset

from tta.training.trainer import Trainer

SR = 16000
TOY_CLASSES = ["low tone", "high tone", "white noise", "clicks"]


class ToyRegression(Dataset):
    def __init__(self, n: int = 40, dim: int = 8, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        self.y = self.x @ torch.randn(dim, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i], "id": i}


class ToyTrainer(Trainer):
    """Linear regression with dropout (so the RNG state matters for exact resume)."""

    name = "toy"

    def __init__(self, stop_at: int | None = None, interrupt_at: int | None = None, dropout: float = 0.2, **kw):
        kw.setdefault("progress", False)
        super().__init__(**kw)
        self.stop_at, self.interrupt_at, self.dropout = stop_at, interrupt_at, dropout

    def build_model(self):
        return nn.Sequential(nn.Linear(8, 16), nn.Dropout(self.dropout), nn.Linear(16, 1))

    def build_train_data(self):
        return ToyRegression()

    def run_step(self, batch):
        if self.interrupt_at is not None and self.step == self.interrupt_at:
            raise KeyboardInterrupt
        loss = ((self.model(batch["x"]) - batch["y"]) ** 2).mean()
        if self.stop_at is not None and self.step + 1 == self.stop_at:
            self.request_stop()
        return {"loss": loss}

    def evaluate(self):
        ds = ToyRegression()
        return {"mse": float(((self.model(ds.x) - ds.y) ** 2).mean())}


def toy_sound(label: str, seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """A 16 kHz waveform [N] of one of TOY_CLASSES (with random pitch/phase jitter)."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * SR)
    t = torch.arange(n) / SR
    jitter = 1 + 0.1 * (torch.rand(1, generator=g).item() - 0.5)
    if label == "low tone":
        return 0.5 * torch.sin(2 * math.pi * 220 * jitter * t)
    if label == "high tone":
        return 0.5 * torch.sin(2 * math.pi * 3000 * jitter * t)
    if label == "white noise":
        return 0.3 * torch.randn(n, generator=g)
    wav = torch.zeros(n)
    wav[:: int(800 * jitter)] = 1.0
    return wav


class ToySounds(Dataset):
    """Labelled synthetic clips shaped like CorpusDataset items (some two-source mixtures)."""

    def __init__(self, n: int = 64, seconds: float = 1.0, mix_prob: float = 0.25, seed: int = 0):
        self.n, self.seconds, self.mix_prob, self.seed = n, seconds, mix_prob, seed
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch * 100_000 + i)
        label = TOY_CLASSES[i % len(TOY_CLASSES)]
        wav = toy_sound(label, self.seconds, seed=int(torch.randint(0, 10**6, (1,), generator=g)))
        labels = [label]
        if torch.rand(1, generator=g).item() < self.mix_prob:
            other = TOY_CLASSES[(i + 1) % len(TOY_CLASSES)]
            wav = wav + toy_sound(other, self.seconds, seed=i)
            labels.append(other)
        return {"audio": wav, "caption": " and ".join(f"the sound of {lab}" for lab in labels), "labels": labels}
