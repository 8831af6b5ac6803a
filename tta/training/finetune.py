"""``tta finetune``: a LoRA adapter (or, with ``full``, all UNet weights) fitted to a folder of captioned
recordings, as a stage of the shared :class:`~tta.training.trainer.Trainer` (hooks only).

The base model's VAE, vocoder and CLAP are frozen; the folder's recordings are cut into windows and encoded once
(:mod:`tta.training.finetune_data`). Each step trains the denoising objective of the base model's own noise
schedule and prediction type, conditioned as the base model was (each window's CLAP audio embedding; its
caption's text embedding for ``text_cond_prob`` of them; the empty text for ``cond_drop_prob``). Checkpoints
hold only the adapter's weights (and the optimizer), so a LoRA run's checkpoints are small; a run resumes from
``latest`` after a kill. Audio previews of the captions go to ``<run_dir>/previews/`` every ``preview_every``
steps (and at the end). At the end the adapter is written to ``output`` (:func:`tta.lora.save_adapter`), or with
``full`` a model folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from tta.errors import InputError
from tta.training.trainer import Trainer

ADAPTER_NAME = "finetune"
SETTINGS = ("rank", "alpha", "conv", "full", "clip_seconds", "cond_drop_prob", "text_cond_prob")


def text_only_parts(base: Path, full: bool):
    """A diffusers AudioLDM folder's VAE, vocoder and CLAP text tower (``text_encoder/`` + ``tokenizer/``): a base
    whose CLAP has no audio tower, so training conditions on the captions' text embeddings (what generation uses)."""
    from tta.errors import ModelLoadError
    from tta.loading import load_vae, load_vocoder
    from tta.models.clap.hf import HFClapText
    from tta.training.ldm_parts import FrozenParts

    if not (base / "text_encoder").is_dir():
        raise ModelLoadError(f"{base}: no clap/ (a tta folder) and no text_encoder/ (a diffusers AudioLDM folder)")
    if full:
        raise InputError(
            f"--full writes a tta model folder, which needs a CLAP with an audio tower; {base} has only CLAP's text "
            "tower (a diffusers folder): fine-tune a LoRA adapter, or `tta convert` the original .ckpt first"
        )
    clap = HFClapText.from_pretrained(base / "text_encoder", base / "tokenizer").eval().requires_grad_(False)
    return FrozenParts(base, load_vae(base).requires_grad_(False), load_vocoder(base).requires_grad_(False), clap)


class FinetuneTrainer(Trainer):
    """Fine-tuning hooks (see the module docstring).

    Args:
        data: the folder of recordings; ``captions``, ``captions_from_names``: where their captions come from
            (:mod:`tta.retrieval.sources`).
        output: the adapter file (``.safetensors``) or, with ``full``, the model folder to write.
        base: the model folder fine-tuned (default the shipped ``checkpoints/``).
        rank, alpha, conv: the adapter (:func:`tta.lora.lora_config`).
        full: train every UNet weight instead of an adapter.
        clip_seconds, max_windows: window length, and windows per recording.
        cond_drop_prob, text_cond_prob: conditioning shares (see the module docstring).
        preview_every, preview_steps, preview_seconds: audio previews (0: only at the end).
        index_output: also write the folder as a retrieval index here (:meth:`write_index`): passed per call
            (``tta generate --retrieval INDEX``), it extends the base model's retrieval prior with the new
            recordings, so prompts like their captions map to their CLAP audio embeddings; the model folder is
            left as it is.
        **kwargs: :class:`Trainer` arguments.
    """

    name = "finetune"

    def __init__(
        self,
        data: str | os.PathLike,
        output: str | os.PathLike,
        base: str | os.PathLike | None = None,
        captions: str | os.PathLike | None = None,
        captions_from_names: bool = False,
        rank: int = 16,
        alpha: float | None = None,
        conv: bool = False,
        full: bool = False,
        clip_seconds: float = 2.56,
        max_windows: int = 4,
        cond_drop_prob: float = 0.1,
        text_cond_prob: float = 0.5,
        preview_every: int = 0,
        preview_steps: int = 10,
        preview_seconds: float = 2.56,
        index_output: str | os.PathLike | None = None,
        **kwargs,
    ):
        kwargs.setdefault("eval_every", preview_every)
        super().__init__(**kwargs)
        from tta.paths import default_model_dir

        if rank < 1:
            raise InputError(f"--rank must be >= 1, got {rank}")
        self.data, self.output = Path(data), Path(output)
        self.base = Path(base) if base else default_model_dir()
        self.captions = Path(captions) if captions else None
        self.captions_from_names = captions_from_names
        self.rank, self.alpha, self.conv, self.full = int(rank), alpha, bool(conv), bool(full)
        self.clip_seconds, self.max_windows = float(clip_seconds), int(max_windows)
        self.cond_drop_prob, self.text_cond_prob = cond_drop_prob, text_cond_prob
        self.preview_steps, self.preview_seconds = preview_steps, preview_seconds
        self.entries = None
        self.index_output = Path(index_output) if index_output else None
        if self.index_output is not None and not any((self.base / sub).is_dir() for sub in ("prior", "retrieval")):
            raise InputError(
                f"{self.base} has neither a prior/ nor a retrieval/ that a retrieval index could extend "
                "(build a prior with `tta prior build`, or leave out the index)"
            )

    # -- data --
    def load_frozen(self) -> None:
        """The base model's VAE, vocoder, CLAP and noise schedule (once)."""
        if getattr(self, "vae", None) is not None:
            return
        import json

        from tta.audio.mel import MelSpectrogram
        from tta.training.diffusion_loss import DiffusionLoss
        from tta.training.ldm_conditioning import TrainingConditioner
        from tta.training.ldm_parts import load_frozen_parts

        self.mel = MelSpectrogram()
        if (self.base / "clap").is_dir():
            self.parts = load_frozen_parts(self.base, self.mel.n_mels)
        else:
            self.parts = text_only_parts(self.base, self.full)
        self.vae, self.vocoder, self.clap = self.parts.vae, self.parts.vocoder, self.parts.clap
        if not self.clap.has_audio:  # no CLAP audio tower: every crop on its caption's text embedding
            self.text_cond_prob = 1.0
        self.noise_schedule = json.loads((self.base / "scheduler" / "scheduler_config.json").read_text())
        prediction = self.noise_schedule.get("prediction_type", "epsilon")
        self.objective = DiffusionLoss(self.noise_schedule, prediction)
        self.conditioner = TrainingConditioner(self.clap, self.cond_drop_prob, self.text_cond_prob)

    def build_train_data(self):
        import json

        from tta.models.vae import vae_downsample_factor
        from tta.training.finetune_data import captioned_entries, encode_folder

        self.entries = captioned_entries(self.data, self.captions, self.captions_from_names)
        self.load_frozen()
        levels = len(json.loads((self.base / "unet" / "config.json").read_text())["block_out_channels"])
        multiple = vae_downsample_factor(self.vae) * 2 ** (levels - 1)  # whole latent grids of the UNet
        items = encode_folder(
            self.entries, self.vae, self.clap, self.mel, self.clip_seconds, multiple, self.max_windows
        )
        if len(items) < self.batch_size:
            raise InputError(f"{self.data}: {len(items)} training windows, fewer than --batch-size {self.batch_size}")
        return items

    def collate(self, items: list[dict]) -> dict:
        return {
            "latents": torch.stack([it["latents"] for it in items]),
            "audio_emb": torch.stack([it["audio_emb"] for it in items]),
            "captions": [it["caption"] for it in items],
        }

    @property
    def learnt_captions(self) -> list[str]:
        return sorted({c for e in self.entries or [] for c in e["captions"]})

    # -- model --
    def build_model(self):
        from diffusers import UNet2DConditionModel

        from tta.lora import lora_config

        unet = UNet2DConditionModel.from_pretrained(str(self.base / "unet"), use_safetensors=True)
        if self.full:
            return unet.requires_grad_(True)
        unet.requires_grad_(False)
        self.lora = lora_config(self.rank, self.alpha, self.conv)
        unet.add_adapter(self.lora, adapter_name=ADAPTER_NAME)  # its weights train, the rest stay frozen
        return unet

    def model_state_dict(self, model) -> dict[str, torch.Tensor]:
        if self.full:
            return model.state_dict()
        from tta.lora import adapter_state

        return adapter_state(model, ADAPTER_NAME)

    def load_model_state_dict(self, model, state: dict[str, torch.Tensor]) -> None:
        if self.full:
            model.load_state_dict(state)
            return
        from peft.utils import set_peft_model_state_dict

        set_peft_model_state_dict(model, state, adapter_name=ADAPTER_NAME)

    def run_step(self, batch: dict) -> dict[str, torch.Tensor]:
        z0, audio_emb = batch["latents"], batch["audio_emb"]
        cond = self.conditioner(audio_emb, batch["captions"])
        noise = torch.randn_like(z0)
        t = torch.randint(0, self.objective.num_timesteps, (z0.shape[0],), device=z0.device)
        return {"loss": self.objective(self.model, z0, cond, noise, t)}

    # -- previews and the result --
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Audio previews of (up to four of) the learnt captions: ``previews/step_XXXXXXX_N.wav``."""
        from tta.audio.io import save_audio
        from tta.pipelines import TTAPipeline

        if not self.accelerator.is_main_process or not self.preview_steps:
            return {}
        pipe = TTAPipeline(self.unwrapped_model, self.vae, self.vocoder, self.clap, self.noise_schedule)
        prompts = self.learnt_captions[:4]
        out = pipe(prompts, self.preview_seconds, self.preview_steps, seed=self.seed, progress=False)
        folder = self.run_dir / "previews"
        for i, wav in enumerate(out.audios):
            save_audio(folder / f"step_{self.step:07d}_{i}.wav", wav, out.sample_rate)
        return {}

    def settings(self) -> dict:
        out = {k: getattr(self, k) for k in SETTINGS}
        out.update(steps=self.step, max_steps=self.max_steps, batch_size=self.batch_size, lr=self.lr, seed=self.seed)
        out.update(data=str(self.data), clips=len(self.entries or []), base=str(self.base))
        return out

    def on_train_end(self) -> None:
        if not self.accelerator.is_main_process:
            return
        from tta.loading import model_hash

        model = self.unwrapped_model.eval()
        if self.full:
            from tta.training.ldm_parts import export_ldm

            export_ldm(self.output, model, self.parts, self.noise_schedule, {})
            if (self.base / "prior").is_dir() and not (self.output / "prior").exists():
                import shutil

                shutil.copytree(self.base / "prior", self.output / "prior")  # same CLAP: the base's prior fits
        else:
            from tta.lora import adapter_state, save_adapter

            state = adapter_state(model, ADAPTER_NAME)
            save_adapter(self.output, state, self.lora, model_hash(self.base), self.learnt_captions, self.settings())
        print(f"wrote {self.output}")
        if self.index_output is not None:
            self.write_index(self.index_output)

    @torch.no_grad()
    def write_index(self, folder: Path) -> Path:
        """The fine-tuning folder as a retrieval index (:func:`tta.lora.prior.write_folder_index`) built with the
        base model's CLAP and VAE, at ``folder``."""
        from tta.lora.prior import write_folder_index
        from tta.pipelines import TTAPipeline

        pipe = TTAPipeline.from_pretrained(self.base)
        write_folder_index(pipe, self.entries, folder, progress=self.progress)
        print(f"wrote the retrieval index of {len(self.entries)} recordings to {folder}")
        return folder
