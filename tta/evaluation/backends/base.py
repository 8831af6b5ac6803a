"""The one interface every embedding backend of ``tta eval`` implements."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tta.errors import InputError, ModelLoadError


class ClipFeatures(NamedTuple):
    """What a backend extracts from one clip.

    Attributes:
        frames (np.ndarray): embeddings [T, D], float32; T = 1 for clip-level backends (CLAP, PANNs), one row
            per 0.96 s example for VGGish. FAD pools the frames of all clips, as fadtk and
            frechet-audio-distance do.
        logits (np.ndarray | None): classifier outputs [C] (for KL and Inception Score), or None.
    """

    frames: np.ndarray
    logits: np.ndarray | None


class EmbeddingBackend(ABC):
    """An audio embedding model for evaluation.

    Attributes:
        name (str): registry name (``--backend``).
        sample_rate (int): the rate ``features`` expects; the runner loads (and resamples) files to it.
        classifier (str | None): what ``ClipFeatures.logits`` are, in words (None: no classifier).
        class_names (list[str] | None): the C class names of the logits.
    """

    name: str = ""
    sample_rate: int = 16000
    classifier: str | None = None
    class_names: list[str] | None = None
    revision: str = "v1"  # bump when a backend's code changes its embeddings
    weights_hash: str = ""  # content hash of the weights (set by the constructor)

    @abstractmethod
    def features(self, wav: np.ndarray) -> ClipFeatures:
        """One mono waveform [N] at ``sample_rate`` -> :class:`ClipFeatures`."""

    def version(self) -> str:
        """A string that changes whenever the embeddings would: backend, code revision and weights' hash."""
        return f"{self.name}-{self.revision}-{self.weights_hash}"

    def embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        """Waveforms [N_i] at ``sample_rate`` -> all their frames stacked, [sum T_i, D]."""
        return np.concatenate([self.features(w).frames for w in waveforms], axis=0)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def module_hash(module) -> str:
    """Content hash of a torch module's state dict (for a backend built from a model in memory)."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def weights_file(path: str | os.PathLike | None, backend: str, published: str) -> Path:
    """Check the ``--backend-weights`` file a backend needs: given, present and a file."""
    if path is None:
        raise InputError(f"backend {backend!r} needs --backend-weights FILE (its published weights, {published})")
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"--backend-weights {path}: no such file (backend {backend!r} expects {published})")
    return path


def load_state_dict(path: Path, backend: str) -> dict:
    """``torch.load`` of a published weight file, without executing pickled code."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelLoadError(f"cannot read {backend} weights {path}: {err}") from err


def load_into(module, state: dict, path: Path, backend: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming the file on mismatch."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0:2]
        raise ModelLoadError(f"{path} is not a {backend} weight file: {' '.join(first)}") from err


def load_published(model, weights: str | os.PathLike | None, backend: str, published: str, select=None) -> str:
    """Load a published weight file (``select``: state dict -> the part to load) into ``model``; returns its hash."""
    path = weights_file(weights, backend, published)
    state = load_state_dict(path, backend)
    load_into(model, select(state) if select is not None else state, path, backend)
    return file_sha256(path)
