"""CLAP backends behind one interface (:class:`ClapEncoder`), and :func:`load_clap`.

A CLAP folder is recognised by its ``config.json``:

* ``{"backend": "<name>", ...}`` - a tta CLAP; ``<name>`` is a key of ``BACKENDS`` and the rest of the
  config are the backend class's constructor arguments (weights in ``model.safetensors``).
* ``{"model_type": "clap", ...}`` - a transformers ``ClapModel`` folder (LAION-CLAP weights).
* ``{"model_type": "clap_text_model", ...}`` - a transformers CLAP text tower (diffusers AudioLDM's
  ``text_encoder/``, with ``tokenizer/`` beside it): text only.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

from tta.errors import ModelLoadError
from tta.models.clap.base import ClapEncoder

# backend name -> "module:Class" under tta.models.clap; imported on demand.
BACKENDS: dict[str, str] = {
    "minilm-mel": "tta.models.clap.minilm_mel:MiniLMMelClap",  # tta's own small CLAP
    "hf-clap": "tta.models.clap.hf:HFClap",  # transformers ClapModel (LAION-CLAP)
    "hf-clap-text": "tta.models.clap.hf:HFClapText",  # transformers CLAP text tower only
}


def backend_class(name: str) -> type[ClapEncoder]:
    if name not in BACKENDS:
        raise ModelLoadError(f"unknown CLAP backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def backend_name(clap: ClapEncoder) -> str:
    """The ``BACKENDS`` key of ``clap``'s class (what its folder's ``config.json`` names as ``backend``)."""
    path = f"{type(clap).__module__}:{type(clap).__name__}"
    for name, target in BACKENDS.items():
        if target == path:
            return name
    return getattr(clap, "backend", type(clap).__name__)


def load_clap(path: str | os.PathLike | None = None, device: str = "cpu") -> ClapEncoder:
    """Load a CLAP encoder from a folder (default: the shipped one, ``checkpoints/clap``).

    Returns:
        ClapEncoder: in eval mode; ``encode_text(list[str]) -> [B, D]`` and
        ``encode_audio([B, N] at 16 kHz) -> [B, D]``, both L2-normalised.
    """
    from tta.paths import default_clap_dir

    folder = Path(path) if path is not None else default_clap_dir()
    config_file = folder / "config.json"
    if not config_file.is_file():
        hint = "" if path is not None else " (no default CLAP is installed; pass a folder or set $TTA_CLAP)"
        raise ModelLoadError(f"no CLAP config at {config_file}{hint}")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"corrupt CLAP config {config_file}: {err}") from err
    if "backend" in config:
        name = config["backend"]
    elif config.get("model_type") == "clap":
        name = "hf-clap"
    elif config.get("model_type") in ("clap_text_model", "clap_text_model_with_projection"):
        name = "hf-clap-text"
    else:
        raise ModelLoadError(f"{config_file} names no CLAP backend (no 'backend' or known 'model_type')")
    model = backend_class(name).from_pretrained(folder)
    return model.to(device).eval()


__all__ = ["BACKENDS", "ClapEncoder", "backend_class", "load_clap"]
