"""The one CLAP interface the pipeline, re-ranking, training and evaluation use."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class ClapEncoder(nn.Module, ABC):
    """Text and audio into one L2-normalised embedding space.

    Attributes:
        embedding_dim (int): D, the size of the shared space (512 for LAION-CLAP and tta's own CLAP).
        sample_rate (int): the rate ``encode_audio`` expects its input at (16 kHz for every backend;
            a backend whose model runs at another rate resamples internally).
        has_audio (bool): False for text-only backends (a diffusers AudioLDM folder ships only the
            text tower); ``encode_audio`` then raises a clear error.
    """

    embedding_dim: int = 512
    sample_rate: int = 16000
    has_audio: bool = True

    @abstractmethod
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """list of B strings -> Tensor [B, D], L2-normalised, float32, on the module's device."""

    @abstractmethod
    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] at 16 kHz in [-1, 1] -> Tensor [B, D], L2-normalised."""

    def similarity(self, texts: list[str], audio: torch.Tensor) -> torch.Tensor:
        """Cosine similarity [len(texts), B] between each text and each waveform."""
        return self.encode_text(texts) @ self.encode_audio(audio).T

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")
