"""Training checkpoints on disk: ``<run_dir>/checkpoints/step_XXXXXXX/`` folders and an atomic ``latest`` pointer.

A step folder is written under a temporary name and renamed into place, so a crash while saving leaves the
previous checkpoint intact; ``latest`` (a one-line text file) is replaced atomically after the rename.
Reading a missing, truncated or corrupt file raises :class:`ModelLoadError` naming that file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from tta.audio.io import write_atomic
from tta.errors import ModelLoadError

LATEST = "latest"
MODEL = "model.safetensors"
EMA = "ema.safetensors"
STATE = "training_state.pt"  # optimizer, scheduler, RNG states
META = "trainer_state.json"  # step, epoch, position in the epoch


def step_dir_name(step: int) -> str:
    return f"step_{step:07d}"


def save_checkpoint(
    ckpt_root: str | os.PathLike,
    step: int,
    model_state: dict[str, torch.Tensor],
    training_state: dict,
    meta: dict,
    ema_state: dict[str, torch.Tensor] | None = None,
    keep: int | None = 3,
    extra_states: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Write one checkpoint folder, point ``latest`` at it, and delete all but the newest ``keep`` folders.

    ``extra_states`` are further weight sets (e.g. ``{"discriminator": ...}``), each as ``<name>.safetensors``.
    """
    from safetensors.torch import save_file

    root = Path(ckpt_root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in model_state.items()}, str(tmp / MODEL))
    if ema_state is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in ema_state.items()}, str(tmp / EMA))
    for name, state in (extra_states or {}).items():
        if name in ("model", "ema"):
            raise ValueError(f"extra checkpoint state may not be called {name!r}")
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp / f"{name}.safetensors"))
    torch.save(training_state, tmp / STATE)
    (tmp / META).write_text(json.dumps({**meta, "step": step}, indent=2) + "\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_atomic(root / LATEST, final.name + "\n")
    if keep:
        old = sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]
        for p in old:
            shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(ckpt_root: str | os.PathLike) -> Path | None:
    """The folder ``latest`` points at, or None when there is no ``latest`` file."""
    root = Path(ckpt_root)
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    folder = root / name
    if not name or not folder.is_dir():
        raise ModelLoadError(f"{pointer} points at {name!r}, which is not a checkpoint folder in {root}")
    return folder


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelLoadError(f"checkpoint file missing: {path}")
    try:
        return load_file(str(path))
    except Exception as err:
        raise ModelLoadError(f"corrupt or truncated checkpoint file {path}: {err}") from err


def load_checkpoint(folder: str | os.PathLike) -> dict:
    """Read a checkpoint folder -> ``{"model", "ema" (or None), "extra", "training_state", "meta"}``.

    ``extra`` maps each further ``<name>.safetensors`` (see :func:`save_checkpoint`) to its weights.

    Raises:
        ModelLoadError: a file is missing, truncated or corrupt (the message names it).
    """
    folder = Path(folder)
    out = {"model": _load_safetensors(folder / MODEL), "ema": None}
    if (folder / EMA).exists():
        out["ema"] = _load_safetensors(folder / EMA)
    out["extra"] = {
        p.name[: -len(".safetensors")]: _load_safetensors(p)
        for p in sorted(folder.glob("*.safetensors"))
        if p.name not in (MODEL, EMA)
    }
    state_file = folder / STATE
    if not state_file.is_file():
        raise ModelLoadError(f"checkpoint file missing: {state_file}")
    try:
        out["training_state"] = torch.load(state_file, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ModelLoadError(f"corrupt or truncated checkpoint file {state_file}: {err}") from err
    meta_file = folder / META
    try:
        out["meta"] = json.loads(meta_file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"corrupt or missing checkpoint file {meta_file}: {err}") from err
    return out
