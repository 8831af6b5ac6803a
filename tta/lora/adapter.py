"""LoRA adapters of a tta UNet: peft ``LoraConfig`` on the attention projections (and optionally the ResNet
convolutions), written as one safetensors file.

The file holds the adapter's weights (peft's state-dict keys, without an adapter name) and, as safetensors
metadata (strings, JSON where structured):

* ``format``: ``"tta-lora"``, ``format_version``;
* ``peft_config``: the ``LoraConfig`` as a JSON object (what :func:`read_adapter` rebuilds it from);
* ``base_model_hash``: :func:`tta.loading.model_hash` of the model folder it was trained on (loading it on
  another model is a :class:`~tta.errors.ModelLoadError`);
* ``captions``: the captions it learnt (a JSON list); ``training``: the training settings (a JSON object);
* ``tta_version``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tta.errors import ModelLoadError

FORMAT = "tta-lora"
FORMAT_VERSION = "1"
# diffusers' attention blocks: queries, keys, values, output projection (self- and the second attention)
ATTENTION_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
# the ResNet blocks' 3x3 convolutions (``--lora-conv``)
CONV_TARGETS = ("conv1", "conv2")


def lora_config(rank: int = 16, alpha: float | None = None, conv: bool = False, dropout: float = 0.0):
    """peft ``LoraConfig`` over the UNet's attention projections (and ResNet convolutions with ``conv``).

    ``alpha`` defaults to ``rank`` (a scale of 1 at every rank)."""
    from peft import LoraConfig

    targets = ATTENTION_TARGETS + (CONV_TARGETS if conv else ())
    pattern = r".*\.(" + "|".join(t.replace(".", r"\.") for t in targets) + r")$"
    return LoraConfig(
        r=int(rank),
        lora_alpha=float(alpha if alpha is not None else rank),
        lora_dropout=float(dropout),
        target_modules=pattern,
        init_lora_weights=True,  # B = 0: a fresh adapter leaves the model unchanged
    )


def base_unet(unet: torch.nn.Module) -> torch.nn.Module:
    """The diffusers UNet inside ``unet`` (itself, or a :class:`~tta.models.retrieval.RetrievalUNet`'s)."""
    return getattr(unet, "unet", unet)


def config_to_dict(config) -> dict[str, Any]:
    """A ``LoraConfig`` as plain JSON-able values."""
    out = {}
    for key, value in config.to_dict().items():
        if isinstance(value, set):
            value = sorted(value)
        elif hasattr(value, "value"):  # enums (peft_type, task_type)
            value = value.value
        out[key] = value
    return out


def config_from_dict(data: dict[str, Any]):
    """The ``LoraConfig`` of :func:`config_to_dict`'s output (unknown keys are ignored)."""
    from peft import LoraConfig

    names = {f.name for f in dataclasses.fields(LoraConfig) if f.init}
    kwargs = {k: v for k, v in data.items() if k in names and k not in ("peft_type", "task_type")}
    if isinstance(kwargs.get("target_modules"), list):
        kwargs["target_modules"] = set(kwargs["target_modules"])
    return LoraConfig(**kwargs)


@dataclass
class Adapter:
    """A LoRA adapter file, read: weights, its ``LoraConfig``, and what it says about itself."""

    path: Path
    state: dict[str, torch.Tensor]
    config: Any
    base_model_hash: str | None
    captions: list[str] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def file_hash(self) -> str:
        return file_hash(self.path)

    @property
    def num_params(self) -> int:
        return sum(t.numel() for t in self.state.values())


def file_hash(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, first 16 hex digits (what sidecars record)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def adapter_state(unet: torch.nn.Module, name: str) -> dict[str, torch.Tensor]:
    """The weights of adapter ``name`` on ``unet`` (peft's keys, no adapter name), contiguous float32 on CPU."""
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(base_unet(unet), adapter_name=name)
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}


def save_adapter(
    path: str | os.PathLike,
    state: dict[str, torch.Tensor],
    config,
    base_model_hash: str | None,
    captions: list[str] | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write an adapter file (weights + metadata, see the module docstring), atomically."""
    from safetensors.torch import save_file

    from tta import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "peft_config": json.dumps(config_to_dict(config), sort_keys=True),
        "base_model_hash": base_model_hash or "",
        "captions": json.dumps(sorted(set(captions or []))),
        "training": json.dumps(training or {}, sort_keys=True, default=str),
        "tta_version": __version__,
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=meta)
    from tta.audio.io import umask

    os.chmod(tmp, 0o666 & ~umask())  # what a plain open() would have made
    os.replace(tmp, path)
    return path


def read_adapter(path: str | os.PathLike) -> Adapter:
    """Read an adapter file; a missing, corrupt or foreign file is one :class:`ModelLoadError` naming it."""
    from safetensors import safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"LoRA adapter {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors' own errors -> one line
        raise ModelLoadError(f"LoRA adapter {path} is not a readable safetensors file: {err}") from err
    if meta.get("format") != FORMAT:
        raise ModelLoadError(f"{path} is not a tta LoRA adapter (no format={FORMAT!r} in its metadata)")
    try:
        config = config_from_dict(json.loads(meta["peft_config"]))
        captions = json.loads(meta.get("captions") or "[]")
        training = json.loads(meta.get("training") or "{}")
    except (KeyError, TypeError, ValueError) as err:
        raise ModelLoadError(f"LoRA adapter {path} has corrupt metadata: {err}") from err
    return Adapter(path, state, config, meta.get("base_model_hash") or None, captions, training, meta)


def describe(adapter: Adapter) -> dict[str, Any]:
    """What ``tta lora info`` prints: the config, base hash, captions, training settings, size."""
    cfg = config_to_dict(adapter.config)
    layers = sorted({k.split(".lora_")[0] for k in adapter.state})
    return {
        "path": str(adapter.path),
        "hash": adapter.file_hash,
        "base_model_hash": adapter.base_model_hash,
        "rank": cfg.get("r"),
        "alpha": cfg.get("lora_alpha"),
        "target_modules": cfg.get("target_modules"),
        "layers": len(layers),
        "parameters": adapter.num_params,
        "bytes": adapter.path.stat().st_size,
        "captions": adapter.captions,
        "training": adapter.training,
        "tta_version": adapter.meta.get("tta_version"),
    }
