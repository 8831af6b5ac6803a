"""Training checkpoints on disk: ``<run_dir>/checkpoints/step_XXXXXXX/`` folders and an atomic ``latest`` pointer.

A step folder is what ``accelerator.save_state`` writes (optimizers ``optimizer*.bin``, LR schedules
``scheduler*.bin``, each process's RNG ``random_states_<rank>.pkl``, the objects registered for checkpointing
``custom_checkpoint_<i>.pkl``: the training position and the EMA), with the weights in tta's own names
(``model.safetensors`` in the keys the stage chooses, ``discriminator.safetensors``: :func:`register_weight_hooks`)
and a readable ``trainer_state.json`` (step, stage, processes, config). It is written under a temporary name and
renamed into place, so a crash while saving leaves the previous checkpoint intact; ``latest`` (a one-line text
file) is replaced atomically after the rename. Reading a missing, truncated or corrupt file raises
:class:`ModelLoadError` naming that file.

Checkpoints of tta's earlier trainer (``training_state.pt`` beside the weights) are not resumed: the data order
changed with the move to accelerate's sharded loader, so such a resume could not be exact; the error says what to do.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from tta.audio.io import write_atomic
from tta.errors import ModelLoadError

LATEST = "latest"
META = "trainer_state.json"  # step, stage, processes, config: for people and for the format check
FORMAT = 2  # 1: tta's own files (training_state.pt); 2: accelerate's save_state
LEGACY_STATE = "training_state.pt"


def step_dir_name(step: int) -> str:
    return f"step_{step:07d}"


def save_state(accelerator, ckpt_root: str | os.PathLike, step: int, meta: dict, keep: int | None = 3) -> Path:
    """``accelerator.save_state`` into a new step folder (every process calls this), then point ``latest`` at it
    and delete all but the newest ``keep`` folders (main process)."""
    root = Path(ckpt_root)
    final = root / step_dir_name(step)
    tmp = root / f".{final.name}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        meta = {"format": FORMAT, **meta, "step": step, "num_processes": accelerator.num_processes}
        (tmp / META).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        write_atomic(root / LATEST, final.name + "\n")
        if keep:
            for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()  # no process reads `latest` before it names this folder
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


def read_meta(folder: str | os.PathLike) -> dict:
    """``trainer_state.json`` of a step folder, after checking that every file in it is whole.

    Raises:
        ModelLoadError: a missing, truncated or corrupt file (named), or a checkpoint of the earlier format.
    """
    folder = Path(folder)
    if (folder / LEGACY_STATE).is_file():
        raise ModelLoadError(
            f"{folder} is a checkpoint of tta's earlier trainer ({LEGACY_STATE}), which this one cannot resume "
            "exactly: start the run afresh (--no-resume, or another --run-dir; its weights are in "
            f"{folder / 'model.safetensors'}), or finish it with the tta release that wrote it"
        )
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"corrupt or missing checkpoint file {folder / META}: {err}") from err
    for path in sorted(folder.iterdir()):
        if path.suffix in (".bin", ".pkl"):  # torch.save's zip archives: a cut file has no central directory
            try:
                zipfile.ZipFile(path).close()
            except (OSError, zipfile.BadZipFile) as err:
                raise ModelLoadError(f"corrupt or truncated checkpoint file {path}: {err}") from err
    return meta


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelLoadError(f"checkpoint file missing: {path}")
    try:
        return load_file(str(path))
    except Exception as err:
        raise ModelLoadError(f"corrupt or truncated checkpoint file {path}: {err}") from err


def register_weight_hooks(accelerator, files: list[tuple[str, Callable, Callable]]) -> None:
    """Let ``save_state``/``load_state`` write and read the prepared models as tta's named weight files.

    ``files`` has one ``(file name, state_dict(), load_state_dict(state))`` per model passed to
    ``accelerator.prepare``, in that order; the hooks take the models out of accelerate's own lists, so it writes
    no ``model_<i>.safetensors`` of its own (diffusers' training scripts do the same)."""
    from safetensors.torch import save_file

    def save_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            for name, state_dict, _ in files:
                state = {k: v.detach().cpu().contiguous() for k, v in state_dict().items()}
                save_file(state, str(Path(output_dir) / name))
        weights.clear()

    def load_hook(models, input_dir):
        for name, _, load_state_dict in files:
            load_state_dict(load_safetensors(Path(input_dir) / name))
        models.clear()

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def optimizer_param_names(optimizer, model) -> list[list[str]]:
    """The names (``model.named_parameters()``) of each optimizer group's parameters, in order."""
    name_of = {id(p): n for n, p in model.named_parameters()}
    return [[name_of[id(p)] for p in group["params"]] for group in optimizer.param_groups]


def name_optimizer_state(optimizer, model) -> None:
    """Make ``optimizer``'s saved state carry its parameters' names and load a state saved with the parameters
    grouped otherwise (e.g. a run resumed after a parameter got its own learning rate) by those names
    (:func:`regroup_optimizer_state`); torch's own ``state_dict`` hooks, so ``save_state``/``load_state`` do it."""
    names = optimizer_param_names(optimizer, model)

    def add_names(_, state):
        state["param_names_by_group"] = names
        return state

    def regroup(opt, state):
        saved_names = state.pop("param_names_by_group", None)
        if saved_names is None or saved_names == names:
            return state
        return regroup_optimizer_state(state, saved_names, opt.param_groups, names)

    optimizer.register_state_dict_post_hook(add_names)
    optimizer.register_load_state_dict_pre_hook(regroup)


def regroup_optimizer_state(saved: dict, saved_names: list[list[str]], current: list[dict], names: list[list[str]]):
    """Re-key an optimizer ``state_dict`` saved with one grouping of the parameters for another one, matching
    parameters by name.

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


def align_schedule(scheduler, optimizer) -> None:
    """After loading a schedule saved for another number of parameter groups: one base lr per current group
    (its ``initial_lr``), at the saved position."""
    groups = optimizer.param_groups
    if len(scheduler.base_lrs) != len(groups):
        scheduler.base_lrs = [g["initial_lr"] for g in groups]
        scheduler._last_lr = [g["lr"] for g in groups]
