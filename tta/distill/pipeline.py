"""A pipeline over a distilled student: the teacher's folder with the student adapter merged into its UNet.

``StudentPipeline`` is a :class:`~tta.pipelines.TTAPipeline` (the one core: text-to-audio, composition,
editing, the retrieval prior) whose defaults are the student's: ``sampler="lcm"``, the student's steps, and
guidance 1 (the teacher's guidance is folded into the student, so there is no unconditional row; a call that
asks for guidance > 1 gets it on top, which the student was not trained for).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from tta.distill import STUDENT_DIR, load_student, read_student
from tta.errors import ModelLoadError
from tta.models.vocoder import set_vocoder_refine
from tta.pipelines import TTAPipeline


class StudentPipeline(TTAPipeline):
    """See the module docstring; build it with :meth:`from_pretrained`."""

    default_sampler = "lcm"
    folded_guidance = True  # composed guidance averages the sounds' (guided) rows
    student_path: str | None = None
    vocoder_refine: bool = True

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        torch_dtype: torch.dtype | None = None,
        fast: bool = True,
        student: str | os.PathLike | None = None,
        vocoder_refine: bool | None = None,
    ):
        """The teacher at ``path`` (default: the shipped model) with the student at ``student`` (default:
        ``<path>/lcm``) merged into its UNet (:func:`tta.distill.load_student`). ``vocoder_refine``: run the
        vocoder's refinement to the mel (:func:`tta.models.vocoder.set_vocoder_refine`); None: as ``student.json`` says
        (absent there: as the model does)."""
        teacher = TTAPipeline.from_pretrained(path, device="cpu", fast=False)
        folder = Path(teacher.name_or_path)
        student_dir = Path(student) if student is not None else folder / STUDENT_DIR
        if not (student_dir / "adapter_config.json").is_file():
            raise ModelLoadError(f"no distilled student at {student_dir} (adapter_config.json missing)")
        info = read_student(student_dir)
        unet = load_student(teacher.unet, student_dir, folder / "unet")
        pipe = cls(
            unet,
            teacher.vae,
            teacher.vocoder,
            teacher.clap,
            teacher.scheduler_config,
            name_or_path=str(folder),
            sampling_defaults={"guidance_scale": 1.0, "num_inference_steps": info["num_inference_steps"]},
            prior=teacher.prior,
        )
        pipe.student_path = str(student_dir)
        refine = info.get("vocoder_refine", True) if vocoder_refine is None else bool(vocoder_refine)
        pipe.vocoder_refine = set_vocoder_refine(pipe.vocoder, refine)
        pipe.to(device, torch_dtype)
        if fast:
            pipe.enable_fast_inference()
        return pipe

    def model_settings(self) -> dict[str, Any]:
        from tta.loading import model_hash

        settings = super().model_settings()
        if self.student_path:
            settings["student"] = self.student_path
            settings["student_hash"] = model_hash(self.student_path)
            settings["vocoder_refine"] = self.vocoder_refine
        return settings
