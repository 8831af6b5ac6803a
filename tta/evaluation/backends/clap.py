"""CLAP audio towers as embedding backends: tta's own CLAP (the default) and LAION-CLAP (transformers).

Both go through :func:`tta.models.clap.load_clap`, so any CLAP folder it reads works:

* ``clap`` (default): the shipped ``checkpoints/clap`` (or ``--backend-weights FOLDER``); works offline.
* ``laion-clap``: a transformers ``ClapModel`` folder (``config.json`` with ``model_type: clap``) given with
  ``--backend-weights FOLDER``; nothing is downloaded.

One embedding per clip: the renormalised mean of the CLAP embeddings of up to 4 windows of 5 s (a shorter
clip is tiled to 5 s), as :func:`tta.evaluation.clap_zero_shot.window_embedding` computes it.

Classifier for KL / Inception Score: zero-shot over :data:`tta.data.captions.CLASSES`, logits
``100 * cos(audio, "the sound of <class>")`` (the CLIP logit scale, a fixed temperature of 0.01).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from tta.errors import InputError, ModelLoadError
from tta.evaluation.backends.base import ClipFeatures, EmbeddingBackend, file_sha256, module_hash

ZERO_SHOT_SCALE = 100.0


def folder_hash(folder: Path) -> str:
    """Content hash of a model folder's config and weight files."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".safetensors", ".bin", ".txt", ".model"):
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(file_sha256(path).encode())
    return digest.hexdigest()


class ClapBackend(EmbeddingBackend):
    """Frames [1, D] per clip from a CLAP audio tower; zero-shot logits over tta's classes; ``encode_text``."""

    name = "clap"
    sample_rate = 16000
    classifier = "CLAP zero-shot over tta.data.captions.CLASSES (logits = 100 * cosine)"

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu", model=None):
        from tta.data.captions import CLASSES, class_prompt
        from tta.models.clap import load_clap
        from tta.paths import default_clap_dir

        if model is None:
            folder = Path(weights).expanduser() if weights is not None else default_clap_dir()
            model = load_clap(folder, device=device)
            self.weights_hash = folder_hash(folder)
        else:
            self.weights_hash = module_hash(model)
        if not model.has_audio:
            raise InputError("this CLAP has no audio tower (a text-only CLAP cannot embed audio)")
        self.clap = model.eval()
        self.sample_rate = int(model.sample_rate)
        self.class_names = list(CLASSES)
        self._class_prompts = [class_prompt(c) for c in CLASSES]
        self._class_text = None

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> np.ndarray:
        """list of B strings -> L2-normalised text embeddings [B, D]."""
        return self.clap.encode_text(list(texts)).float().cpu().numpy()

    @torch.no_grad()
    def features(self, wav: np.ndarray) -> ClipFeatures:
        from tta.evaluation.clap_zero_shot import window_embedding

        if self._class_text is None:
            self._class_text = self.encode_text(self._class_prompts)  # [C, D]
        x = torch.as_tensor(np.asarray(wav, np.float32).reshape(-1), device=self.clap.device)
        emb = window_embedding(self.clap, x).float().cpu().numpy()  # [D]
        return ClipFeatures(
            emb[None].astype(np.float32), (ZERO_SHOT_SCALE * self._class_text @ emb).astype(np.float32)
        )


class LaionClapBackend(ClapBackend):
    """``--backend laion-clap --backend-weights FOLDER``: a transformers ``ClapModel`` folder."""

    name = "laion-clap"

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu", model=None):
        if model is None and weights is None:
            raise InputError(
                "backend 'laion-clap' needs --backend-weights FOLDER (a transformers ClapModel folder, "
                "e.g. laion/clap-htsat-unfused saved locally)"
            )
        if model is None and not (Path(weights).expanduser() / "config.json").is_file():
            raise ModelLoadError(f"--backend-weights {weights}: not a ClapModel folder (no config.json)")
        super().__init__(weights, device=device, model=model)
