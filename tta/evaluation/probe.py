"""A linear probe: multinomial logistic regression on frozen embeddings, the judge made from a backend that
has no classifier over tta's classes (the aisfx backend).

The embeddings are standardised (the training set's mean and standard deviation per dimension), then
``logits = x W^T + b`` is fitted by full-batch L-BFGS on the mean cross-entropy plus ``l2 / 2 * ||W||^2``:
deterministic, no learning rate to tune, seconds on a CPU for a few thousand clips. Saved as safetensors with
the class names in its metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tta.errors import InputError, ModelLoadError


def default_probe_path(weights_hash: str) -> Path:
    """``<tta cache>/aisfx/probe-<weights hash>.safetensors``: where the aisfx backend looks for its probe."""
    from tta.paths import cache_dir

    return cache_dir() / "aisfx" / f"probe-{weights_hash[:16]}.safetensors"


class LinearProbe:
    """Standardise, then a linear layer: embeddings [N, D] -> logits [N, C] over ``classes``."""

    def __init__(self, weight, bias, mean, std, classes: Sequence[str], info: dict | None = None):
        self.weight = torch.as_tensor(weight, dtype=torch.float64)  # [C, D]
        self.bias = torch.as_tensor(bias, dtype=torch.float64)  # [C]
        self.mean = torch.as_tensor(mean, dtype=torch.float64)  # [D]
        self.std = torch.as_tensor(std, dtype=torch.float64)  # [D]
        self.classes = list(classes)
        self.info = dict(info or {})
        if self.weight.shape != (len(self.classes), self.mean.numel()):
            raise ModelLoadError(f"probe weight {tuple(self.weight.shape)} does not match {len(self.classes)} classes")

    def logits(self, embeddings) -> np.ndarray:
        """Embeddings [N, D] -> logits [N, C], float32."""
        x = (torch.as_tensor(np.asarray(embeddings), dtype=torch.float64) - self.mean) / self.std
        return (x @ self.weight.T + self.bias).numpy().astype(np.float32)

    def rank(self, embeddings, classes: Sequence[str] | None = None) -> np.ndarray:
        """[N, C']: per clip, indices into ``classes`` (default the probe's) from the most likely class down."""
        logits = self.logits(embeddings)
        if classes is not None:
            index = {c: i for i, c in enumerate(self.classes)}
            missing = [c for c in classes if c not in index]
            if missing:
                raise InputError(f"the probe has no class {missing[0]!r}")
            logits = logits[:, [index[c] for c in classes]]
        return np.argsort(-logits, axis=1, kind="stable")

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"weight": self.weight, "bias": self.bias, "mean": self.mean, "std": self.std}

    def digest(self) -> str:
        h = hashlib.sha256(json.dumps(self.classes).encode())
        for key, value in self.tensors().items():
            h.update(key.encode())
            h.update(value.contiguous().numpy().tobytes())
        return h.hexdigest()

    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        meta = {"classes": json.dumps(self.classes), "info": json.dumps(self.info)}
        save_file({k: v.contiguous() for k, v in self.tensors().items()}, str(tmp), metadata=meta)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LinearProbe:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in ("weight", "bias", "mean", "std")}
            return cls(**tensors, classes=json.loads(meta["classes"]), info=json.loads(meta.get("info", "{}")))
        except (OSError, KeyError, ValueError, RuntimeError) as err:
            raise ModelLoadError(f"cannot read linear probe {path}: {err}") from err


def train_probe(
    embeddings, labels: Sequence[str], classes: Sequence[str], l2: float = 1e-3, max_iter: int = 500
) -> LinearProbe:
    """Fit a :class:`LinearProbe` on embeddings [N, D] with one label (a name in ``classes``) per row."""
    x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float64)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({lab for lab in labels if lab not in index})
    if unknown:
        raise InputError(f"labels not among the classes: {', '.join(unknown[:3])}")
    if x.ndim != 2 or x.shape[0] != len(labels) or x.shape[0] < 2:
        raise InputError(f"need embeddings [N >= 2, D] and N labels, got {tuple(x.shape)} and {len(labels)}")
    y = torch.tensor([index[lab] for lab in labels])
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    weight = torch.zeros(len(classes), x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=max_iter, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ weight.T + bias, y) + 0.5 * l2 * (weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    info = {"train_clips": int(x.shape[0]), "l2": l2}
    return LinearProbe(weight.detach(), bias.detach(), mean, std, classes, info)


def topk_accuracy(ranks: np.ndarray, targets: Sequence[int], k: int) -> float:
    """Share of rows whose target index is among the first ``k`` of ``ranks`` [N, C]."""
    return float(np.mean([t in r[:k] for r, t in zip(ranks, targets)])) if len(targets) else float("nan")
