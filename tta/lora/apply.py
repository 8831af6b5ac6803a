"""Loading LoRA adapters onto a pipeline's UNet (peft layers, unmerged), stacking and scaling them.

Each :func:`load_lora` injects one more named peft adapter; every loaded adapter with a non-zero scale is
active, so their updates add up (``W x + sum_i scale_i * alpha_i / r_i * B_i A_i x``). An adapter at scale 0
is left inactive, so the model computes exactly what it did without it. :func:`unload_lora` puts the
original layers back.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

from tta.errors import ModelLoadError
from tta.lora.adapter import base_unet, read_adapter

PREFIX = "tta_lora_"
_REGISTRY = "_tta_loras"  # attribute on the UNet: name -> {"path", "scale", "hash"}


def _registry(unet: torch.nn.Module) -> dict[str, dict[str, Any]]:
    if not hasattr(unet, _REGISTRY):
        setattr(unet, _REGISTRY, {})
    return getattr(unet, _REGISTRY)


def _lora_layers(unet: torch.nn.Module):
    from peft.tuners.lora import LoraLayer

    return [(name, m) for name, m in unet.named_modules() if isinstance(m, LoraLayer)]


def _activate(unet: torch.nn.Module) -> None:
    """Scales from the registry; the adapters with a non-zero scale active, the rest inactive."""
    reg = _registry(unet)
    active = [name for name, entry in reg.items() if entry["scale"] != 0]
    for _, layer in _lora_layers(unet):
        for name, entry in reg.items():
            layer.set_scale(name, float(entry["scale"]))
        layer.set_adapter(active)  # an empty list: no LoRA term at all (the base model, bit for bit)
        for param in layer.parameters():
            param.requires_grad_(False)


def load_lora(pipe, path: str | os.PathLike, scale: float = 1.0) -> str:
    """Add the adapter at ``path`` to ``pipe``'s UNet at ``scale`` (stacks on those already loaded); returns
    its name. An adapter trained on another base model is a :class:`ModelLoadError`."""
    from peft import inject_adapter_in_model
    from peft.utils import set_peft_model_state_dict

    adapter = read_adapter(path)
    own = pipe.model_hash
    if adapter.base_model_hash and own and adapter.base_model_hash != own:
        raise ModelLoadError(
            f"LoRA adapter {adapter.path} was made for base model {adapter.base_model_hash}, "
            f"not this one ({own}: {pipe.name_or_path})"
        )
    unet = base_unet(pipe.unet)
    reg = _registry(unet)
    name = f"{PREFIX}{len(reg)}"
    while name in reg:
        name += "_"
    with warnings.catch_warnings():  # peft warns that a config exists already: stacking adapters is the point
        warnings.filterwarnings("ignore", message=".*Already found a `peft_config`.*")
        inject_adapter_in_model(adapter.config, unet, adapter_name=name)
    result = set_peft_model_state_dict(unet, adapter.state, adapter_name=name)
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if missing:
        raise ModelLoadError(f"LoRA adapter {adapter.path} does not fit this UNet ({missing[0]} has no layer)")
    reg[name] = {"path": str(adapter.path), "scale": float(scale), "hash": adapter.file_hash}
    base = next(p for n, p in unet.named_parameters() if "lora_" not in n)
    with torch.no_grad():
        for n, p in unet.named_parameters():
            if name in n:  # the new adapter's weights follow the UNet's device and dtype
                p.data = p.data.to(device=base.device, dtype=base.dtype)
    _activate(unet)
    return name


def unload_lora(pipe) -> None:
    """Remove every loaded adapter: the UNet's original layers go back in place."""
    unet = base_unet(pipe.unet)
    for name, layer in _lora_layers(unet):
        parent_name, _, child = name.rpartition(".")
        parent = unet.get_submodule(parent_name) if parent_name else unet
        setattr(parent, child, layer.get_base_layer())
    _registry(unet).clear()
    if hasattr(unet, "peft_config"):  # what peft's injection left on the model
        del unet.peft_config


def loaded_adapters(pipe) -> list[dict[str, Any]]:
    """Each loaded adapter's path, scale and file hash, in load order (what a sidecar records)."""
    return [dict(entry) for entry in _registry(base_unet(pipe.unet)).values()]
