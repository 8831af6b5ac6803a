"""Few-step students distilled from a tta model (`tta train distill`): saving, checking and merging them.

A student folder is a ``peft`` LoRA adapter over its teacher's UNet (``adapter_config.json``,
``adapter_model.safetensors``) plus ``student.json``: the sampler it was distilled for (``"lcm"``), its default
steps, the teacher's guidance scale folded into it, the hash of the teacher UNet it fits, and whether its audio
goes through the vocoder's refinement to the mel (``vocoder_refine``; absent: as the model says). Loading merges the
adapter into the teacher's weights (``merge_and_unload``): the merged UNet is a plain ``UNet2DConditionModel``
of the teacher's size and speed per step, and samples with one row per latent (no guidance row).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tta.errors import ModelLoadError

STUDENT_FILE = "student.json"
STUDENT_DIR = "lcm"  # the shipped student's sub-folder of the model folder


def save_student(
    model,
    folder: str | os.PathLike,
    teacher: str | os.PathLike,
    guidance: float,
    steps: int,
    lcm,
    vocoder_refine: bool | None = None,
):
    """Write the adapter of ``model`` (a ``peft`` model over the teacher's UNet) and ``student.json``
    (``vocoder_refine``: see :func:`tta.models.vocoder.set_vocoder_refine`; None: as the model says)."""
    from tta.loading import model_hash

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    (folder / "README.md").unlink(missing_ok=True)  # peft's template card; the model card is checkpoints/README.md
    info = {
        "sampler": "lcm",
        "num_inference_steps": int(steps),
        "guidance_scale_folded": float(guidance),
        "original_inference_steps": int(len(lcm.grid)),
        "teacher_unet_hash": model_hash(Path(teacher) / "unet"),
    }
    if vocoder_refine is not None:
        info["vocoder_refine"] = bool(vocoder_refine)
    (folder / STUDENT_FILE).write_text(json.dumps(info, indent=2) + "\n")


def read_student(folder: str | os.PathLike) -> dict:
    """``student.json`` of a student folder (:class:`ModelLoadError` naming the file if missing or bad)."""
    path = Path(folder) / STUDENT_FILE
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"not a distilled student: cannot read {path} ({err})") from None
    if info.get("sampler") != "lcm" or not isinstance(info.get("num_inference_steps"), int):
        raise ModelLoadError(f"{path} does not describe an LCM student (sampler, num_inference_steps)")
    if not isinstance(info.get("vocoder_refine", True), bool):
        raise ModelLoadError(f"{path}: vocoder_refine must be true or false")
    return info


def load_student(unet, folder: str | os.PathLike, teacher_unet_dir: str | os.PathLike | None = None):
    """The teacher ``unet`` with the student adapter in ``folder`` merged into its weights (a plain UNet).

    ``teacher_unet_dir``: the folder ``unet`` was loaded from; its hash must be the one the student was
    distilled from (else :class:`ModelLoadError`)."""
    from peft import PeftModel

    from tta.loading import model_hash

    folder = Path(folder)
    info = read_student(folder)
    if teacher_unet_dir is not None and info.get("teacher_unet_hash") != model_hash(teacher_unet_dir):
        raise ModelLoadError(
            f"the student in {folder} was distilled from another UNet than {teacher_unet_dir} "
            f"(hash {info.get('teacher_unet_hash')})"
        )
    try:
        merged = PeftModel.from_pretrained(unet, str(folder), is_trainable=False).merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise ModelLoadError(f"cannot load the student adapter in {folder}: {err}") from err
    return merged.eval()
