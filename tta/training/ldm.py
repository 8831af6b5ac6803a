"""The latent diffusion stage: a UNet learns to denoise VAE latents of corpus crops, conditioned on CLAP.

The stage wires parts that each do one job:

* the frozen VAE, vocoder, CLAP and retrieval index, and the exported model folder: :mod:`tta.training.ldm_parts`;
* waveform -> log-mel -> latents: the pipeline's own codec (:func:`tta.pipelines.codec.encode_mel`, a posterior
  sample times the VAE's ``scaling_factor``), on random crops with the corpus augmentations and a random gain;
* the condition of each crop (AudioLDM's audio embedding, caption text, the empty text for guidance,
  neighbours): :class:`tta.training.ldm_conditioning.TrainingConditioner`;
* the objective (v or epsilon, min-SNR weights): :class:`tta.training.diffusion_loss.DiffusionLoss`;
* the encoded-crop cache: :mod:`tta.training.latent_cache`; the metrics: :mod:`tta.training.ldm_eval`.

On a CPU the VAE encoder costs about as much as a step of the small UNet, so with ``latent_cache_slots`` > 0 the
latents and CLAP audio embeddings of ``latent_cache_slots`` epochs of crops are encoded once and cycled through;
0 encodes every crop afresh.

*Objective.* ``prediction_type="v_prediction"`` by default: the target has unit variance at every noise level, so
the loss is balanced across timesteps, and the model stays accurate at the high-noise end, which few-step
samplers (DPM-Solver++ at 10-25 steps) visit with large strides. min-SNR-gamma under AudioLDM's schedule gives
the noisier half of the timesteps (SNR < 0.13) about 5% of the total: the steps where the sound's class is
decided barely trained, and our first default model ignored its condition there. The default is the plain v-MSE.

*Condition scale.* The CLAP embedding is L2-normalised: its 512 entries are ~0.044, so the linear projection that
brings it into the UNet (``class_embedding``) starts with outputs ~6x smaller than the time embedding's, and its
weights, moved by Adam at the common learning rate, kept their initial scale (mean |w| 0.022 at initialisation,
0.024 after 4500 steps of our first default model). ``condition_scale`` s gives that weight s times the learning
rate and (in a fresh run) s times the initial scale: exactly what feeding it the embedding times s would do
(s = sqrt(512) makes the entries unit-variance; ``configs/train/ldm.yaml`` uses it; 1 leaves the projection as
diffusers builds it), while the saved UNet takes the plain embedding, as AudioLDM's does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from tta.data.prompts import DEFAULT_EVAL_PROMPTS
from tta.errors import InputError
from tta.training.audio_stage import AudioStageTrainer
from tta.training.diffusion_loss import DiffusionLoss

CACHE_SETTINGS = ("seed", "train_split", "clip_seconds", "mix_prob", "augment", "gain_db", "speech_music_frac")


class LdmTrainer(AudioStageTrainer):
    """Latent diffusion stage hooks (see the module docstring).

    Args:
        model: ``UNet2DConditionModel`` arguments over AudioLDM-S's (``configs/model/unet_*.yaml``).
        components: the model folder whose ``vae/``, ``vocoder/`` and ``clap/`` are used (frozen) and exported
            with the UNet; default the shipped ``checkpoints/``.
        prediction_type: ``"v_prediction"`` or ``"epsilon"``.
        noise_schedule: diffusers scheduler config of the forward process (default AudioLDM's 1000-step
            scaled-linear betas 0.0015-0.0195); ``prediction_type`` is set from the argument above.
        cond_drop_prob: share of crops trained unconditionally (the empty text's embedding).
        text_cond_prob: share of crops conditioned on their caption's text embedding instead of their audio's.
        min_snr_gamma: min-SNR-gamma loss weighting, or None (default) for the plain MSE.
        condition_scale: the CLAP embedding's projection (``class_embedding``) learns this many times faster than
            the rest (its own learning rate) and, in a fresh run, starts this many times larger: the same as
            feeding it the embedding times ``condition_scale``, while the saved UNet still takes the plain
            embedding (as AudioLDM's). See the module docstring.
        eval_prompts: prompts generated at each evaluation (audio and mels to TensorBoard; the CLAP ranks their
            classes when they are corpus classes).
        eval_steps, eval_guidance, eval_seconds_generated: sampling settings of those generations.
        eval_timesteps: timesteps of the held-out denoising loss (fixed noise, so the figure is comparable
            across evaluations).
        latent_cache_slots: epochs of encoded crops to cache and cycle through (0: encode on the fly).
        sampling_defaults: the exported model's own sampling defaults (``guidance_scale``,
            ``num_inference_steps``), written to its ``model_index.json``; what a call that gives none uses.
        retrieval: a retrieval index (``tta index build``) of the training recordings: the UNet becomes a
            :class:`~tta.models.retrieval.RetrievalUNet` that attends to each crop's ``retrieval_top_k`` nearest
            index entries (found by its caption's CLAP text embedding, as prompts find theirs), never the crop's own
            recordings or others cut from the same source recording (its ``group``). A plain ``cross_attention_dim``
            list in the model config becomes ``retrieval_token_dim``; an ``init_from`` without ``retrieval/`` keeps
            every weight but the cross-attention keys and values (:func:`~tta.models.retrieval.adapt_unet_state`).
        retrieval_top_k, retrieval_token_dim: neighbours per crop, and the size of their tokens.
        retrieval_drop_prob: share of crops whose neighbours are replaced by the null tokens (the model also
            generates without an index); crops dropped for guidance (``cond_drop_prob``) lose them too.
        retrieval_only_prob: share of crops whose CLAP condition is the empty text's while they keep their
            neighbours (so the UNet learns what the neighbours alone say).
        **kwargs: :class:`AudioStageTrainer` and :class:`Trainer` arguments.
    """

    name = "ldm"

    def __init__(
        self,
        model: dict | None = None,
        components: str | os.PathLike | None = None,
        prediction_type: str = "v_prediction",
        noise_schedule: dict | None = None,
        cond_drop_prob: float = 0.1,
        text_cond_prob: float = 0.0,
        min_snr_gamma: float | None = None,
        condition_scale: float = 1.0,
        eval_prompts: list[str] | tuple[str, ...] = DEFAULT_EVAL_PROMPTS,
        eval_steps: int = 20,
        eval_guidance: float = 3.0,
        eval_seconds_generated: float = 5.0,
        eval_timesteps: list[int] | tuple[int, ...] = (50, 200, 400, 600, 800, 950),
        latent_cache_slots: int = 0,
        sampling_defaults: dict | None = None,
        retrieval: str | os.PathLike | None = None,
        retrieval_top_k: int = 4,
        retrieval_token_dim: int = 256,
        retrieval_drop_prob: float = 0.1,
        retrieval_only_prob: float = 0.1,
        **kwargs,
    ):
        kwargs.setdefault("clip_seconds", 2.56)
        super().__init__(**kwargs)
        from tta.loading import check_sampling_defaults
        from tta.models.unet import AUDIOLDM_S_UNET
        from tta.sampling.schedulers import AUDIOLDM_SCHEDULER

        probs = dict(
            cond_drop_prob=cond_drop_prob,
            text_cond_prob=text_cond_prob,
            retrieval_drop_prob=retrieval_drop_prob,
            retrieval_only_prob=retrieval_only_prob,
        )
        for name, p in probs.items():
            setattr(self, name, p)
            if not 0.0 <= p <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {p}")
        if not condition_scale > 0:
            raise InputError(f"condition_scale must be > 0, got {condition_scale}")
        if latent_cache_slots < 0:
            raise InputError(f"latent_cache_slots must be >= 0, got {latent_cache_slots}")
        if isinstance(retrieval_top_k, bool) or not isinstance(retrieval_top_k, int) or retrieval_top_k < 1:
            raise InputError(f"retrieval_top_k must be an integer >= 1, got {retrieval_top_k!r}")
        self.noise_schedule = {**AUDIOLDM_SCHEDULER, **(noise_schedule or {}), "prediction_type": prediction_type}
        self.objective = DiffusionLoss(self.noise_schedule, prediction_type, min_snr_gamma)
        self.model_kwargs = dict(model or {})
        self.components = components
        self.condition_scale = float(condition_scale)
        self.eval_prompts = list(eval_prompts)
        self.eval_steps, self.eval_guidance = eval_steps, eval_guidance
        self.eval_seconds_generated = eval_seconds_generated
        self.eval_timesteps = [int(t) for t in eval_timesteps]
        self.latent_cache_slots = int(latent_cache_slots)
        self.sampling_defaults = check_sampling_defaults(dict(sampling_defaults or {}), "sampling_defaults")
        self.retrieval = retrieval
        self.retrieval_top_k = retrieval_top_k
        self.retrieval_token_dim = int(retrieval_token_dim)
        self.parts = None  # FrozenParts, loaded once by build_frozen
        levels = len(self.model_kwargs.get("block_out_channels", AUDIOLDM_S_UNET["block_out_channels"]))
        self.unet_factor = 2 ** (levels - 1)

    # -- frozen parts --
    def components_dir(self) -> Path:
        from tta.paths import default_model_dir

        return Path(self.components) if self.components is not None else default_model_dir()

    def build_frozen(self) -> None:
        """Load the VAE, vocoder, CLAP and index (frozen) and the crops' conditioner (once)."""
        if self.parts is not None:
            return
        from tta.models.vae import vae_downsample_factor
        from tta.training.ldm_conditioning import TrainingConditioner, source_groups
        from tta.training.ldm_parts import load_frozen_parts

        parts = load_frozen_parts(self.components_dir(), self.mel.n_mels, self.retrieval)
        self.vae, self.vocoder, self.clap, self.index = parts.vae, parts.vocoder, parts.clap, parts.index
        self.frames_multiple = vae_downsample_factor(self.vae) * self.unet_factor
        frames = int(round(self.clip_seconds * self.mel.sample_rate)) // self.hop
        if frames < self.frames_multiple:
            raise InputError(
                f"clip_seconds={self.clip_seconds} gives {frames} mel frames; the VAE and UNet need at least "
                f"{self.frames_multiple}"
            )
        groups = None
        if self.index is not None:
            from tta.data.summary import read_manifest

            groups = source_groups(read_manifest(self.corpus_root()), self.index)
        self.conditioner = TrainingConditioner(
            self.clap,
            self.cond_drop_prob,
            self.text_cond_prob,
            self.index,
            self.retrieval_top_k,
            self.retrieval_drop_prob,
            self.retrieval_only_prob,
            groups,
        )
        self.parts = parts

    # -- hooks --
    def build_model(self):
        from diffusers import UNet2DConditionModel

        from tta.models.unet import build_unet

        self.build_frozen()
        kwargs = dict(self.model_kwargs)
        if self.index is not None and not isinstance(kwargs.get("cross_attention_dim"), int):
            kwargs["cross_attention_dim"] = self.retrieval_token_dim
        unet = build_unet(**kwargs)
        if unet.config.in_channels != self.vae.config.latent_channels:
            raise InputError(
                f"the UNet takes {unet.config.in_channels} latent channels; the VAE makes "
                f"{self.vae.config.latent_channels}"
            )
        if unet.config.projection_class_embeddings_input_dim != self.clap.embedding_dim:
            raise InputError(
                f"the UNet's condition is {unet.config.projection_class_embeddings_input_dim}-d; the CLAP's "
                f"embeddings are {self.clap.embedding_dim}-d"
            )
        with torch.no_grad():
            unet.class_embedding.weight.mul_(self.condition_scale)
        if self.index is not None:
            return self.build_retrieval_unet(unet)
        self.warm_start(unet, lambda folder: UNet2DConditionModel.from_pretrained(str(Path(folder) / "unet")))
        return unet

    def build_retrieval_unet(self, unet):
        """``unet`` with a fresh :class:`RetrievalEncoder`; warm-started from ``init_from`` (a retrieval model
        whole, or a plain UNet's weights adapted)."""
        from tta.loading import load_components
        from tta.models.retrieval import RetrievalEncoder, RetrievalUNet, adapt_unet_state

        encoder = RetrievalEncoder(
            embedding_dim=self.clap.embedding_dim,
            latent_dim=int(self.index.latent.shape[1]),
            token_dim=int(unet.config.cross_attention_dim),
            top_k=self.retrieval_top_k,
        )
        model = RetrievalUNet(unet, encoder)
        if self.init_from is None:
            return model
        trained = load_components(self.init_from).unet
        try:
            if isinstance(trained, RetrievalUNet):
                model.load_state_dict(trained.state_dict())
            else:
                unet.load_state_dict(adapt_unet_state(trained.state_dict(), unet))
        except (RuntimeError, InputError) as err:
            raise InputError(f"init_from {self.init_from} does not fit the configured model: {err}") from err
        print(f"initialised the {self.name} from {self.init_from}")
        return model

    def build_optimizer(self, model) -> torch.optim.Optimizer:
        """AdamW with the CLAP projection's weight in a group of its own at ``condition_scale`` times the lr."""

        def is_fast(name: str) -> bool:
            return name in ("class_embedding.weight", "unet.class_embedding.weight")

        fast = [p for n, p in model.named_parameters() if is_fast(n) and p.requires_grad]
        if self.condition_scale == 1.0 or not fast:
            return super().build_optimizer(model)
        rest = [p for n, p in model.named_parameters() if not is_fast(n) and p.requires_grad]
        groups = [{"params": rest}, {"params": fast, "lr": self.lr * self.condition_scale}]
        return torch.optim.AdamW(groups, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)

    def build_train_data(self):
        data = super().build_train_data()
        if not self.latent_cache_slots:
            return data
        from tta.loading import model_hash
        from tta.training.latent_cache import LatentCache

        self.build_frozen()
        folder = self.components_dir()
        settings = {k: getattr(self, k) for k in CACHE_SETTINGS}
        settings["mel"] = repr(self.mel.mel_basis.shape)
        fingerprint = json.dumps(
            {"vae": model_hash(folder / "vae"), "clap": model_hash(folder / "clap"), **settings}, sort_keys=True
        )
        return LatentCache(
            data,
            self.encode_items,
            self.run_dir / "latent_cache",
            self.latent_cache_slots,
            fingerprint,
            batch_size=self.batch_size,
            progress=bool(self.progress),
        )

    @torch.no_grad()
    def encode_items(self, items: list[dict], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Corpus items -> {"latents", "audio_emb"} (what the cache stores; random gain from ``generator``)."""
        wav = self.random_gain(self.collate(items)["audio"], generator=generator)
        return {"latents": self.latents(wav, generator=generator), "audio_emb": self.audio_embeddings(wav)}

    def collate(self, items: list[dict]) -> dict:
        """-> {"audio": [B, N] cut to whole multiples of the latent grid, "captions": list[str]}, or for cached
        items {"latents": [B, C, H, W], "audio_emb": [B, D], "captions"}."""
        captions = [it["caption"] for it in items]
        ids = [str(it.get("id", "")) for it in items]
        if "latents" in items[0]:
            return {
                "latents": torch.stack([it["latents"] for it in items]),
                "audio_emb": torch.stack([it["audio_emb"] for it in items]),
                "captions": captions,
                "ids": ids,
            }
        wav = super().collate(items)
        return {"audio": self.whole_grid(wav), "captions": captions, "ids": ids}

    def whole_grid(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveforms [..., N] cut to whole multiples of the latent grid (``hop * frames_multiple`` samples)."""
        n = wav.shape[-1] // (self.hop * self.frames_multiple) * (self.hop * self.frames_multiple)
        return wav[..., :n]

    @torch.no_grad()
    def latents(self, wav: torch.Tensor, generator=None) -> torch.Tensor:
        """Waveforms [B, N] -> scaled VAE latents [B, C, T / f, n_mels / f]: a posterior sample (noise from
        ``generator``, else torch's RNG), through the pipeline's codec."""
        from tta.pipelines.codec import encode_mel

        self.vae.to(wav.device)
        return encode_mel(self.vae, self.log_mel(wav)[:, None], sample=True, generator=generator)

    @torch.no_grad()
    def audio_embeddings(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] -> CLAP audio embeddings [B, D] (float32)."""
        return self.clap.to(wav.device).encode_audio(wav).float()

    def latents_and_conditions(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch's clean latents [B, C, H, W] and its condition rows: cached, or encoded from its audio."""
        if "latents" in batch:
            z0, audio_emb = batch["latents"], batch["audio_emb"]
        else:
            wav = self.random_gain(batch["audio"])
            z0, audio_emb = self.latents(wav), self.audio_embeddings(wav)
        return z0, self.conditioner(audio_emb, batch["captions"], batch.get("ids"))

    def run_step(self, batch: dict) -> dict[str, torch.Tensor]:
        z0, cond = self.latents_and_conditions(batch)
        noise = torch.randn_like(z0)
        t = torch.randint(0, self.objective.num_timesteps, (z0.shape[0],), device=z0.device)
        return {"loss": self.objective(self.model, z0, cond, noise, t)}

    # -- evaluation --
    def pipeline(self):
        """A :class:`TTAPipeline` over the UNet being trained and the frozen parts."""
        from tta.pipelines import TTAPipeline

        return TTAPipeline(self.unwrapped_model, self.vae, self.vocoder, self.clap, self.noise_schedule)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out denoising loss and condition gains (:func:`~tta.training.ldm_eval.denoising_metrics`); then
        generations of ``eval_prompts``: audio and mels to TensorBoard, and ``gen_top1``, the share whose prompt's
        class the CLAP ranks first among the corpus classes (main process)."""
        from tta.training.ldm_eval import denoising_metrics

        device = self.accelerator.device
        g = torch.Generator().manual_seed(self.seed)

        def examples():
            for wav in self.evaluation_audio():
                wav = self.whole_grid(wav)[None].to(device)
                if wav.numel():
                    yield self.latents(wav, generator=g), self.audio_embeddings(wav)

        null = self.conditioner.null_embedding(device)
        out = denoising_metrics(self.objective, self.unwrapped_model, examples(), null, self.eval_timesteps, g)
        if self.eval_prompts and self.accelerator.is_main_process:
            out.update(self.evaluate_generation())
        return out

    @torch.no_grad()
    def evaluate_generation(self) -> dict[str, float]:
        from tta.training.ldm_eval import generate_prompts, prompt_class_hits

        settings = (self.eval_seconds_generated, self.eval_steps, self.eval_guidance, self.seed, self.index)
        audio = generate_prompts(self.pipeline(), self.eval_prompts, *settings)
        mels = self.log_mel(audio.to(self.accelerator.device))
        for i, prompt in enumerate(self.eval_prompts[:4]):
            key = "ldm/" + "_".join(prompt.split())[:40]
            self.log_media(audio={key: audio[i]}, images={key: mels[i].T})
        hits = prompt_class_hits(self.clap, audio, self.eval_prompts, self.corpus_classes())
        return {"gen_top1": sum(hits) / len(hits)} if hits else {}

    def corpus_classes(self) -> list[str]:
        """The sorted labels of the corpus manifest."""
        if not hasattr(self, "_classes"):
            from tta.data.summary import read_manifest

            self._classes = sorted({label for rec in read_manifest(self.corpus_root()) for label in rec["labels"]})
        return self._classes

    # -- export --
    def export_model(self, model, folder: Path) -> None:
        from tta.training.ldm_parts import export_ldm

        export_ldm(folder, model, self.parts, self.noise_schedule, self.sampling_defaults)
