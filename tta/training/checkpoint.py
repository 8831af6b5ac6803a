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


def optimizer_param_names(optimizer, model) -> list[list[str]]:
    """The names (``model.named_parameters()``) of each optimizer group's parameters, in order."""
    name_of = {id(p): n for n, p in model.named_parameters()}
    return [[name_of[id(p)] for p in group["params"]] for group in optimizer.param_groups]


def regroup_optimizer_state(saved: dict, saved_names: list[list[str]], current: list[dict], names: list[list[str]]):
    """Re-key an optimizer ``state_dict`` saved with one grouping of the parameters for another one (e.g. a run
    resumed after a parameter got its own learning rate), matching parameters by name.

    Per-parameter state (Adam's moments and step) is kept; each group takes its current hyperparameters
    (``current``: the new optimizer's ``param_groups``) at the saved point of the schedule (its ``initial_lr``
    times the saved lr / initial_lr). Parameters the saved state does not have start fresh.
    """
    by_name = {}
    for group, group_names in zip(saved["param_groups"], saved_names):
        if len(group["params"]) != len(group_names):
            raise ValueError("saved optimizer groups and parameter names differ in length")
        for index, name in zip(group["params"], group_names):
            if index in saved["state"]:
                by_name[name] = saved["state"][index]
    first = saved["param_groups"][0]
    ratio = first["lr"] / first.get("initial_lr", first["lr"]) if first.get("initial_lr", first["lr"]) else 1.0
    state, groups, start = {}, [], 0
    for group, group_names in zip(current, names):
        new = {k: v for k, v in group.items() if k != "params"}
        new["lr"] = new.get("initial_lr", new["lr"]) * ratio
        new["params"] = list(range(start, start + len(group_names)))
        for index, name in zip(new["params"], group_names):
            if name in by_name:
                state[index] = by_name[name]
        groups.append(new)
        start += len(group_names)
    return {"state": state, "param_groups": groups}
