"""Embedding backends for ``tta eval``, by name (``--backend``); each is imported only when chosen.

Every backend implements :class:`EmbeddingBackend`: ``sample_rate``, ``features(wav [N]) -> ClipFeatures``
(frames [T, D] and optional classifier logits [C]), ``embed(waveforms) -> [sum T, D]`` and ``version()``
(the embedding cache key).
"""

from __future__ import annotations

import importlib
import os

from tta.errors import InputError
from tta.evaluation.backends.base import ClipFeatures, EmbeddingBackend

DEFAULT_BACKEND = "clap"

# name -> "module:Class" under tta.evaluation.backends
BACKENDS: dict[str, str] = {
    "clap": "tta.evaluation.backends.clap:ClapBackend",  # tta's own CLAP (default; offline)
    "laion-clap": "tta.evaluation.backends.clap:LaionClapBackend",  # transformers ClapModel folder
    "vggish": "tta.evaluation.backends.vggish:VGGishBackend",  # vggish-10086976.pth
    "panns": "tta.evaluation.backends.panns:PannsBackend",  # Cnn14_mAP=0.431.pth
    "aisfx": "tta.evaluation.backends.aisfx:AisfxBackend",  # the aisfx wheel's checkpoint.pth (SFX-trained CNN)
}


def backend_class(name: str) -> type[EmbeddingBackend]:
    if name not in BACKENDS:
        raise InputError(f"unknown --backend {name!r}; known: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def load_backend(name: str = DEFAULT_BACKEND, weights: str | os.PathLike | None = None, device: str = "cpu"):
    """Build backend ``name`` from its weights (a file or folder; None: the backend's default, if any)."""
    return backend_class(name)(weights, device=device)


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "ClipFeatures", "EmbeddingBackend", "backend_class", "load_backend"]
