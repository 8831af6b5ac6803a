"""Embedding cache: one ``.npz`` per (audio file content, backend version), under ``tta.paths.cache_dir()``.

The key is the SHA-256 of the file's bytes (renaming or moving a file keeps its entry; editing it does not)
and the backend's ``version()`` (name, settings and the weights' content hash). Entries are written
atomically, so an interrupted run leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from tta.evaluation.backends.base import ClipFeatures, file_sha256


class EmbeddingCache:
    """``get(path)`` / ``put(path, features)`` for one backend version; ``root=None`` disables caching."""

    def __init__(self, backend_version: str, root: str | os.PathLike | None = None, enabled: bool = True):
        from tta.paths import cache_dir

        base = Path(root) if root is not None else cache_dir() / "embeddings"
        self.folder = base / hashlib.sha256(backend_version.encode()).hexdigest()[:24]
        self.enabled = enabled
        self.hits = self.misses = 0

    def _entry(self, path: str | os.PathLike) -> Path:
        digest = file_sha256(path)
        return self.folder / digest[:2] / f"{digest}.npz"

    def get(self, path: str | os.PathLike) -> ClipFeatures | None:
        if not self.enabled:
            return None
        entry = self._entry(path)
        try:
            with np.load(entry) as data:
                out = ClipFeatures(data["frames"], data["logits"] if "logits" in data.files else None)
        except (OSError, ValueError, KeyError):
            self.misses += 1
            return None
        self.hits += 1
        return out

    def put(self, path: str | os.PathLike, features: ClipFeatures) -> None:
        if not self.enabled:
            return
        from tta.audio.io import write_atomic

        arrays = {"frames": np.asarray(features.frames, np.float32)}
        if features.logits is not None:
            arrays["logits"] = np.asarray(features.logits, np.float32)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        try:
            write_atomic(self._entry(path), buf.getvalue())
        except OSError:  # a read-only cache only costs speed
            pass
