"""A student folder from a `tta train distill` checkpoint (to evaluate a run while it trains).

A checkpoint holds the adapter's online weights (``model.safetensors``) and the trainer's EMA of them (a
``custom_checkpoint_<i>.pkl`` with ``shadow_params``, in the order of the adapter's trainable parameters); the
run's configuration is in its ``trainer_state.json``. The export uses the EMA weights, as the stage's own export
at the end of a run does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from tta.errors import ModelLoadError


def ema_state(folder: Path) -> dict | None:
    """The EMA's state dict in a checkpoint folder, or None if it kept none."""
    for path in sorted(folder.glob("custom_checkpoint_*.pkl")):
        state = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(state, dict) and "shadow_params" in state:
            return state
    return None


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    use_ema: bool = True,
    steps: int | None = None,
    vocoder_refine: bool | None = None,
) -> Path:
    """Write the student of ``checkpoint`` (a ``step_XXXXXXX`` folder, or a run's ``checkpoints/latest``) to
    ``out`` with ``steps`` as its default steps (None: the run's ``student_steps``) and ``vocoder_refine`` as
    its decode (None: the model's); returns ``out``."""
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    from tta.distill import save_student
    from tta.loading import read_model_index
    from tta.paths import default_model_dir
    from tta.training.distill import LORA_TARGETS
    from tta.training.distill_loss import ConsistencyObjective

    folder = Path(checkpoint)
    if folder.name == "latest" and folder.is_file():
        folder = folder.parent / folder.read_text().strip()
    try:
        config = json.loads((folder / "trainer_state.json").read_text())["config"]
    except (OSError, KeyError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"not a distill checkpoint: {folder / 'trainer_state.json'} ({err})") from None
    teacher = Path(config.get("components") or default_model_dir())
    schedule = json.loads((teacher / "scheduler" / "scheduler_config.json").read_text())
    guidance = config.get("guidance_scale")
    if guidance is None:
        guidance = float(read_model_index(teacher).get("sampling", {}).get("guidance_scale", 1.0))
    unet = UNet2DConditionModel.from_pretrained(str(teacher / "unet"), use_safetensors=True, local_files_only=True)
    lora = {"r": 32, "lora_alpha": 32, "target_modules": list(LORA_TARGETS), **(config.get("model") or {})}
    model = get_peft_model(unet.requires_grad_(False), LoraConfig(**lora))
    set_peft_model_state_dict(model, load_file(str(folder / "model.safetensors")))
    ema = ema_state(folder) if use_ema else None
    if ema is not None:
        params = [p for p in model.parameters() if p.requires_grad]
        if [tuple(s.shape) for s in ema["shadow_params"]] != [tuple(p.shape) for p in params]:
            raise ModelLoadError(f"the EMA in {folder} does not fit the adapter of its config")
        with torch.no_grad():
            for p, s in zip(params, ema["shadow_params"]):
                p.copy_(s)
    lcm = ConsistencyObjective(schedule, int(config.get("num_ddim_timesteps", 50)), guidance)
    steps = int(config.get("student_steps", 2)) if steps is None else int(steps)
    save_student(model, out, teacher, guidance, steps, lcm, vocoder_refine)
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m tta.distill.export CHECKPOINT OUT [--steps N]``."""
    import argparse

    parser = argparse.ArgumentParser(description="export a `tta train distill` checkpoint as a student folder")
    parser.add_argument("checkpoint", help="a run's checkpoints/step_XXXXXXX or checkpoints/latest")
    parser.add_argument("out", help="the student folder to write (e.g. checkpoints/lcm)")
    parser.add_argument("--steps", type=int, default=None, help="its default steps (default: the run's)")
    parser.add_argument("--online", action="store_true", help="the online adapter weights instead of the EMA")
    parser.add_argument(
        "--no-vocoder-refine",
        action="store_true",
        help="its audio skips the vocoder's refinement to the mel (a third of the vocoder's time)",
    )
    args = parser.parse_args(argv)
    refine = False if args.no_vocoder_refine else None
    print(
        export_checkpoint(args.checkpoint, args.out, use_ema=not args.online, steps=args.steps, vocoder_refine=refine)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
