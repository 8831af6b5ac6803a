"""`tta train distill`: latent consistency distillation of a trained UNet into a few-step student (LCM-LoRA).

The student is the teacher's own UNet with a LoRA adapter (``peft``) on its convolutions, attention and
projections, as in LCM-LoRA (Luo et al. 2023, "LCM-LoRA: A Universal Stable-Diffusion Acceleration Module"):
only the adapter trains and ships (a few MB beside the 87 MB teacher, merged into it at load), and with the
adapter switched off the same module is the frozen teacher, so one UNet serves as teacher, student and (with the
EMA weights swapped in) target. The objective is :class:`tta.training.distill_loss.ConsistencyObjective`: LCM's
Algorithm 1 with the teacher's classifier-free guidance folded in at the model's guidance scale (AudioLCM,
ConsistencyTTA), one DDIM step of the teacher per skipping step, the EMA of the adapter as the target network.

Data and conditions are the LDM stage's (:class:`~tta.training.ldm.LdmTrainer`, whose hooks this reuses): the
cached VAE latents of corpus crops, conditioned on their CLAP *audio* embeddings (some on their caption's text
embedding); the teacher's unconditional row is the empty text's embedding, as at sampling. Checkpoints hold the
adapter weights only (the teacher is the frozen ``components`` UNet), and resume exactly (the trainer's
``save_state``). The export is a peft adapter folder (``adapter_config.json``, ``adapter_model.safetensors``)
plus ``student.json`` (sampler, steps, the teacher's hash): :func:`tta.distill.load_student` merges it.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch

from tta.errors import InputError
from tta.training.distill_loss import ConsistencyObjective
from tta.training.ldm import LdmTrainer

# LCM-LoRA's target modules, named as diffusers' UNet2DConditionModel names them
LORA_TARGETS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "downsamplers.0.conv",
    "upsamplers.0.conv",
    "time_emb_proj",
)


class DistillTrainer(LdmTrainer):
    """Latent consistency distillation stage (see the module docstring).

    Args:
        model: the LoRA adapter's ``peft.LoraConfig`` arguments (``r``, ``lora_alpha``, ``target_modules``,
            ``lora_dropout``); ``configs/model/lcm_lora.yaml``.
        components: the teacher model folder (its ``unet/``, scheduler and frozen parts); default ``checkpoints/``.
        guidance_scale: the teacher's guidance folded into the student (None: the teacher's own default).
        num_ddim_timesteps: the solver grid (LCMScheduler's ``original_inference_steps``).
        huber_c: the pseudo-Huber constant of the distance.
        student_steps: the exported student's default number of steps.
        vocoder_refine: the exported student's ``vocoder_refine`` (False: decode without the ISTFT vocoder's
            refinement, as ``checkpoints/lcm``; None: as the model says); the in-run evaluation decodes the same way.
        init_from: (an :class:`AudioStageTrainer` argument) here a student folder (``checkpoints/lcm``) whose
            adapter starts a fresh run; ignored when the run resumes from its own checkpoint.
        **kwargs: :class:`LdmTrainer` arguments (data, cache, conditions, evaluation) and the trainer's.
    """

    name = "distill"

    def __init__(
        self,
        model: dict | None = None,
        components: str | os.PathLike | None = None,
        guidance_scale: float | None = None,
        num_ddim_timesteps: int = 50,
        huber_c: float = 1e-3,
        student_steps: int = 2,
        vocoder_refine: bool | None = None,
        **kwargs,
    ):
        from tta.loading import read_model_index
        from tta.paths import default_model_dir

        teacher = Path(components) if components is not None else default_model_dir()
        schedule_file = teacher / "scheduler" / "scheduler_config.json"
        if not schedule_file.is_file():
            raise InputError(f"the teacher folder {teacher} has no {schedule_file.name}: pass components=MODEL_DIR")
        schedule = json.loads(schedule_file.read_text())
        if guidance_scale is None:
            guidance_scale = float(read_model_index(teacher).get("sampling", {}).get("guidance_scale", 1.0))
        kwargs.setdefault("cond_drop_prob", 0.0)
        kwargs.setdefault("eval_steps", student_steps)
        kwargs.setdefault("eval_guidance", 1.0)
        super().__init__(
            model=None,
            components=teacher,
            prediction_type=schedule.get("prediction_type", "epsilon"),
            noise_schedule=schedule,
            **kwargs,
        )
        self.lora = dict(model or {})
        self.guidance_scale = float(guidance_scale)
        self.student_steps = int(student_steps)
        if vocoder_refine not in (None, True, False):
            raise InputError(f"vocoder_refine must be true, false or null, got {vocoder_refine!r}")
        self.vocoder_refine = vocoder_refine
        self.lcm = ConsistencyObjective(self.noise_schedule, num_ddim_timesteps, self.guidance_scale, huber_c)

    # -- the model: the teacher's UNet + a LoRA adapter --
    def build_model(self):
        from diffusers import UNet2DConditionModel
        from peft import LoraConfig, get_peft_model

        self.build_frozen()
        if self.index is not None:
            raise InputError("distilling a retrieval-conditioned UNet is not supported; drop retrieval=")
        folder = self.components_dir() / "unet"
        unet = UNet2DConditionModel.from_pretrained(str(folder), use_safetensors=True, local_files_only=True)
        if unet.config.projection_class_embeddings_input_dim != self.clap.embedding_dim:
            raise InputError(f"the UNet in {folder} does not take this CLAP's {self.clap.embedding_dim}-d embeddings")
        lora = {"r": 32, "lora_alpha": 32, "target_modules": list(LORA_TARGETS), **self.lora}
        lora["target_modules"] = list(lora["target_modules"])
        model = get_peft_model(unet.requires_grad_(False), LoraConfig(**lora))
        self.warm_start_student(model, folder)
        return model

    def warm_start_student(self, model, teacher_unet: Path) -> None:
        """Copy the adapter of the student folder ``init_from`` (e.g. ``checkpoints/lcm``) into ``model``, to train
        an exported student on (the EMA starts from the same weights); the student must be of this teacher."""
        if self.init_from is None:
            return
        from safetensors.torch import load_file

        from tta.distill import read_student
        from tta.loading import model_hash

        folder = Path(self.init_from)
        info = read_student(folder)
        if info.get("teacher_unet_hash") != model_hash(teacher_unet):
            raise InputError(f"init_from {folder} is a student of another UNet than {teacher_unet}")
        try:
            state = load_file(str(folder / "adapter_model.safetensors"))
        except OSError as err:
            raise InputError(f"init_from {folder}: cannot read adapter_model.safetensors ({err})") from None
        self.load_model_state_dict(model, state)
        print(f"initialised the {self.name} from {folder}")

    def build_optimizer(self, model) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)

    def model_state_dict(self, model) -> dict[str, torch.Tensor]:
        """The adapter's weights only (the teacher is the frozen ``components`` UNet)."""
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(model)

    def load_model_state_dict(self, model, state: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, state)
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing or result.unexpected_keys:
            raise InputError(
                f"the checkpoint's adapter does not fit: missing {missing[:3]}, unexpected "
                f"{list(result.unexpected_keys)[:3]}"
            )

    @contextmanager
    def teacher(self):
        """The unwrapped model with its adapter off: the frozen teacher."""
        with self.unwrapped_model.disable_adapter():
            yield self.unwrapped_model

    def run_step(self, batch: dict) -> dict[str, torch.Tensor]:
        z0, cond = self.latents_and_conditions(batch)
        uncond = self.conditioner.null_embedding(cond.device).expand_as(cond)
        start, prev = (t.to(z0.device) for t in self.lcm.sample_timesteps(z0.shape[0]))
        noise = torch.randn_like(z0)
        zt = self.lcm.scheduler.add_noise(z0, noise, start)
        with torch.no_grad():
            with self.teacher() as teacher:
                out = self.lcm.guided(teacher, zt, start, cond, uncond)
            z_prev = self.lcm.ddim_step(zt, out, start, prev)
            target = self.target_output(z_prev, prev, cond)
        pred = self.model(zt, start, encoder_hidden_states=None, class_labels=cond).sample.float()
        student = self.lcm.consistency(zt, pred, start)
        return {"loss": self.lcm.distance(student, target)}

    def target_output(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The target network's consistency output: the student with the adapter's EMA weights (no gradient)."""
        from tta.training.ema import ema_weights

        unet = self.unwrapped_model
        with ema_weights(self.ema, self.ema_module()):
            out = unet(z, t, encoder_hidden_states=None, class_labels=cond).sample.float()
        return self.lcm.consistency(z, out, t)

    # -- evaluation and export --
    def pipeline(self):
        """A :class:`TTAPipeline` over the student (adapter on) and the frozen parts."""
        from tta.pipelines import TTAPipeline

        defaults = {"guidance_scale": 1.0, "num_inference_steps": self.student_steps}
        if self.vocoder_refine is False:  # the frozen vocoder serves only this evaluation
            from tta.models.vocoder import set_vocoder_refine

            set_vocoder_refine(self.vocoder, False)
        return TTAPipeline(
            self.unwrapped_model, self.vae, self.vocoder, self.clap, self.noise_schedule, sampling_defaults=defaults
        )

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """``gen_top1`` of ``eval_prompts`` generated by the student (``sampler="lcm"``, ``eval_steps`` steps)."""
        if not (self.eval_prompts and self.accelerator.is_main_process):
            return {}
        from tta.training.ldm_eval import prompt_class_hits

        pipe = self.pipeline()
        result = pipe(
            self.eval_prompts,
            audio_length_in_s=self.eval_seconds_generated,
            num_inference_steps=self.eval_steps,
            guidance_scale=1.0,
            sampler="lcm",
            seed=self.seed,
            progress=False,
        )
        audio = torch.as_tensor(result.audios)
        hits = prompt_class_hits(self.clap, audio, self.eval_prompts, self.corpus_classes())
        return {"gen_top1": sum(hits) / len(hits)} if hits else {}

    def export_model(self, model, folder: Path) -> None:
        from tta.distill import save_student

        save_student(
            model,
            folder,
            self.components_dir(),
            self.guidance_scale,
            self.student_steps,
            self.lcm,
            self.vocoder_refine,
        )
