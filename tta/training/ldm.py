"""The latent diffusion stage: a UNet learns to denoise VAE latents of corpus crops, conditioned on CLAP.

AudioLDM's trick (Liu et al. 2023, "AudioLDM: Text-to-Audio Generation with Latent Diffusion Models", sec. 2.2):
train on the CLAP *audio* embedding of each crop, so no caption is needed, and sample on the CLAP *text*
embedding of the prompt, which lives in the same space. With probability ``text_cond_prob`` a crop is
conditioned on the text embedding of its caption instead (the corpus has captions; this narrows the gap
between the two modalities the UNet sees). With probability ``cond_drop_prob`` the condition is replaced by
the embedding of the empty text, which is what the pipeline uses as the unconditional branch of
classifier-free guidance (its default negative prompt), so training and sampling agree.

The VAE, the vocoder and the CLAP are trained stages (``checkpoints/`` by default) and stay frozen. Latents are
the VAE posterior's samples times its ``scaling_factor``, from random crops with the corpus augmentations and
a random gain. On a CPU the VAE encoder costs about as much as a step of the small UNet, so with
``latent_cache_slots`` > 0 the latents and CLAP audio embeddings of ``latent_cache_slots`` epochs of crops are
encoded once and cycled through (:mod:`tta.training.latent_cache`); 0 encodes every crop afresh.

Objective: ``prediction_type="v_prediction"`` by default (Salimans & Ho 2022, "Progressive Distillation for Fast
Sampling of Diffusion Models"): the target has unit variance at every noise level, so the loss is balanced
across timesteps, and the model stays accurate at the high-noise end, which few-step samplers (DPM-Solver++
at 10-25 steps) visit with large strides. ``"epsilon"`` (AudioLDM's choice) is available. ``min_snr_gamma``
weights the loss by min-SNR-gamma (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting
Strategy"); for v-prediction that weight is min(SNR, gamma) / (SNR + 1), which under AudioLDM's schedule gives
the noisier half of the timesteps (SNR < 0.13) about 5% of the total: the steps where the sound's class is
decided barely trained, and our first default model ignored its condition there. The default is the plain v-MSE.

*Condition scale.* The CLAP embedding is L2-normalised: its 512 entries are ~0.044, so the linear projection that
brings it into the UNet (``class_embedding``) starts with outputs ~6x smaller than the time embedding's, and its
weights, moved by Adam at the common learning rate, kept their initial scale (mean |w| 0.022 at initialisation,
0.024 after 4500 steps of our first default model). ``condition_scale`` s gives that weight s times the learning
rate and (in a fresh run) s times the initial scale: exactly what feeding it the embedding times s would do
(s = sqrt(512) makes the entries unit-variance; ``configs/train/ldm.yaml`` uses it; 1 leaves the projection as
diffusers builds it), while the saved UNet takes the plain embedding, as AudioLDM's does.

The export is a complete model folder (UNet + the frozen VAE, vocoder and CLAP + the noise schedule) that
``TTAPipeline.from_pretrained`` and ``tta generate --model`` load.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from tta.errors import InputError
from tta.training.audio_stage import AudioStageTrainer

DEFAULT_EVAL_PROMPTS = (
    "a dog barking",
    "rain falling",
    "a cow mooing",
    "footsteps on gravel",
    "a man giving a speech",
    "birds chirping",
    "an explosion",
    "a dog barking in the rain",
)


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
        from tta.sampling.schedulers import AUDIOLDM_SCHEDULER

        if prediction_type not in ("v_prediction", "epsilon"):
            raise InputError(f"prediction_type must be 'v_prediction' or 'epsilon', got {prediction_type!r}")
        probs = (cond_drop_prob, text_cond_prob, retrieval_drop_prob, retrieval_only_prob)
        names = ("cond_drop_prob", "text_cond_prob", "retrieval_drop_prob", "retrieval_only_prob")
        for name, p in zip(names, probs):
            if not 0.0 <= p <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {p}")
        self.model_kwargs = dict(model or {})
        self.components = components
        self.prediction_type = prediction_type
        self.noise_schedule = {**AUDIOLDM_SCHEDULER, **(noise_schedule or {}), "prediction_type": prediction_type}
        self.cond_drop_prob = cond_drop_prob
        self.text_cond_prob = text_cond_prob
        self.min_snr_gamma = min_snr_gamma
        if not condition_scale > 0:
            raise InputError(f"condition_scale must be > 0, got {condition_scale}")
        self.condition_scale = float(condition_scale)
        self.eval_prompts = list(eval_prompts)
        self.eval_steps = eval_steps
        self.eval_guidance = eval_guidance
        self.eval_seconds_generated = eval_seconds_generated
        self.eval_timesteps = [int(t) for t in eval_timesteps]
        if latent_cache_slots < 0:
            raise InputError(f"latent_cache_slots must be >= 0, got {latent_cache_slots}")
        self.latent_cache_slots = int(latent_cache_slots)
        from tta.loading import check_sampling_defaults

        self.sampling_defaults = check_sampling_defaults(dict(sampling_defaults or {}), "sampling_defaults")
        self.retrieval = retrieval
        if isinstance(retrieval_top_k, bool) or not isinstance(retrieval_top_k, int) or retrieval_top_k < 1:
            raise InputError(f"retrieval_top_k must be an integer >= 1, got {retrieval_top_k!r}")
        self.retrieval_top_k = retrieval_top_k
        self.retrieval_token_dim = int(retrieval_token_dim)
        self.retrieval_drop_prob = retrieval_drop_prob
        self.retrieval_only_prob = retrieval_only_prob
        self.index = None
        self._caption_cache: dict[str, torch.Tensor] = {}
        self._frozen_built = False
        from tta.models.unet import AUDIOLDM_S_UNET

        levels = len(self.model_kwargs.get("block_out_channels", AUDIOLDM_S_UNET["block_out_channels"]))
        self.unet_factor = 2 ** (levels - 1)

    # -- frozen parts --
    def components_dir(self) -> Path:
        from tta.paths import default_model_dir

        return Path(self.components) if self.components is not None else default_model_dir()

    def build_frozen(self) -> None:
        """Load the VAE, vocoder and CLAP (frozen, eval mode) and the forward process (once)."""
        if self._frozen_built:
            return
        from diffusers import DDPMScheduler

        from tta.loading import load_vae, load_vocoder
        from tta.models.clap import load_clap
        from tta.models.vae import vae_downsample_factor

        folder = self.components_dir()
        self.vae = load_vae(folder).requires_grad_(False)
        self.vocoder = load_vocoder(folder).requires_grad_(False)
        self.clap = load_clap(folder / "clap").requires_grad_(False)
        if self.vocoder.config.model_in_dim != self.mel.n_mels:
            raise InputError(
                f"the vocoder in {folder} takes {self.vocoder.config.model_in_dim} mel bins; the mel front-end "
                f"makes {self.mel.n_mels}"
            )
        self.noise = DDPMScheduler.from_config(
            {k: v for k, v in self.noise_schedule.items() if k in DDPM_KEYS}, prediction_type=self.prediction_type
        )
        self._null_embedding: torch.Tensor | None = None
        self.vae_factor = vae_downsample_factor(self.vae)
        self.frames_multiple = self.vae_factor * self.unet_factor
        if self.retrieval is not None:
            from tta.loading import clap_fingerprint
            from tta.retrieval import RetrievalIndex

            self.index = RetrievalIndex.load(self.retrieval)
            from tta.models.vae import latent_grid

            grid = latent_grid(self.vae, self.mel.n_mels)
            fingerprint = clap_fingerprint(folder / "clap")
            self.index.check_compatible(fingerprint, self.clap.embedding_dim, grid, f"retrieval {self.retrieval}")
        frames = int(round(self.clip_seconds * self.mel.sample_rate)) // self.hop
        if frames < self.frames_multiple:
            raise InputError(
                f"clip_seconds={self.clip_seconds} gives {frames} mel frames; the VAE and UNet need at least "
                f"{self.frames_multiple}"
            )
        self._frozen_built = True

    def null_embedding(self, device) -> torch.Tensor:
        """[1, D]: the CLAP embedding of the empty text (the unconditional condition)."""
        if self._null_embedding is None:
            with torch.no_grad():
                self._null_embedding = self.clap.encode_text([""]).float()
        return self._null_embedding.to(device)

    # -- hooks --
    def build_model(self):
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
        from diffusers import UNet2DConditionModel

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
        settings = {
            k: getattr(self, k) for k in ("seed", "train_split", "clip_seconds", "mix_prob", "augment", "gain_db")
        }
        settings.update(speech_music_frac=self.speech_music_frac, mel=repr(self.mel.mel_basis.shape))
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
        wav = self.collate(items)["audio"]
        wav = self.random_gain(wav, generator=generator)
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
        n = wav.shape[-1] // (self.hop * self.frames_multiple) * (self.hop * self.frames_multiple)
        return {"audio": wav[:, :n], "captions": captions, "ids": ids}

    @torch.no_grad()
    def latents(self, wav: torch.Tensor, sample: bool = True, generator=None) -> torch.Tensor:
        """Waveforms [B, N] -> scaled VAE latents [B, C, T / f, n_mels / f] (posterior sample, or its mode)."""
        self.vae.to(wav.device)
        mel = self.log_mel(wav)[:, None]
        posterior = self.vae.encode(mel).latent_dist
        if sample:
            noise = torch.randn(posterior.mean.shape, generator=generator, device=wav.device)
            z = posterior.mean + posterior.std * noise
        else:
            z = posterior.mode()
        return z * self.vae.config.scaling_factor

    @torch.no_grad()
    def audio_embeddings(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] -> CLAP audio embeddings [B, D] (float32)."""
        return self.clap.to(wav.device).encode_audio(wav).float()

    @torch.no_grad()
    def conditions(self, audio_emb: torch.Tensor, captions: list[str], ids: list[str] | None = None) -> torch.Tensor:
        """[B, D]: each crop's CLAP audio embedding ``audio_emb``; with ``text_cond_prob`` its caption's text
        embedding instead; with ``cond_drop_prob`` the empty text's embedding (torch RNG: resumes are exact).
        With a retrieval index, each row is followed by the crop's neighbours' features (:meth:`neighbours`)."""
        cond, drop = self._film_conditions(audio_emb, captions)
        if self.index is None:
            return cond
        return self.neighbours(cond, captions, ids or [""] * len(captions), drop)

    def _film_conditions(self, audio_emb: torch.Tensor, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        cond = audio_emb.float().clone()
        b = cond.shape[0]
        use_text = torch.rand(b) < self.text_cond_prob
        if use_text.any():
            idx = use_text.nonzero()[:, 0].tolist()
            cond[use_text.to(cond.device)] = self.clap.encode_text([captions[i] for i in idx]).float()
        drop = (torch.rand(b) < self.cond_drop_prob).to(cond.device)
        return torch.where(drop[:, None], self.null_embedding(cond.device).expand_as(cond), cond), drop

    @torch.no_grad()
    def neighbours(self, cond: torch.Tensor, captions: list[str], ids: list[str], drop: torch.Tensor) -> torch.Tensor:
        """Condition rows [B, D] -> [B, D + K * F]: each followed by the packed features of its crop's K nearest
        index entries by caption (its own recordings' source groups excluded). Rows dropped for guidance, and
        ``retrieval_drop_prob`` of the rest, get none (null tokens); ``retrieval_only_prob`` of the rows that
        keep them lose their CLAP condition instead."""
        from tta.models.retrieval import pack_neighbours

        b = cond.shape[0]
        queries = self.caption_embeddings(captions)
        exclude = [set(self.index.rows_of_groups(self.crop_groups(i))) for i in ids]
        found = self.index.search(queries, self.retrieval_top_k, exclude)
        no_tokens = drop.cpu() | (torch.rand(b) < self.retrieval_drop_prob)
        only = ~no_tokens & (torch.rand(b) < self.retrieval_only_prob)
        valid = found.valid & ~no_tokens[:, None]
        rows = found.rows.clamp(min=0)
        feats = pack_neighbours(self.index.audio[rows], self.index.latent[rows], found.scores.clamp(min=-1.0), valid)
        cond = torch.where(only[:, None].to(cond.device), self.null_embedding(cond.device).expand_as(cond), cond)
        return torch.cat([cond, feats.to(cond.device)], dim=1)

    def caption_embeddings(self, captions: list[str]) -> torch.Tensor:
        """[B, D] CLAP text embeddings of ``captions`` (each distinct caption embedded once, then cached)."""
        new = sorted({c for c in captions if c not in self._caption_cache})
        if new:
            if len(self._caption_cache) > 100_000:
                self._caption_cache.clear()
            with torch.no_grad():
                self._caption_cache.update(zip(new, self.clap.encode_text(new).float().cpu()))
        return torch.stack([self._caption_cache[c] for c in captions])

    def crop_groups(self, crop_id: str) -> list[str]:
        """The source recordings (manifest ``group``) of a crop's clips (``id``; a mixture joins two with '+')."""
        if not hasattr(self, "_groups"):
            self._groups = {}
            for line in (self.corpus_root() / "manifest.jsonl").read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self._groups[rec["id"]] = rec.get("group") or rec["id"]
            for entry in self.index.entries:  # an index of other recordings: its own ids and groups
                self._groups.setdefault(str(entry.get("id")), str(entry.get("group")))
        return [self._groups.get(part, part) for part in crop_id.split("+") if part]

    def target(self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.noise.get_velocity(z0, noise, t) if self.prediction_type == "v_prediction" else noise

    def loss_weights(self, t: torch.Tensor) -> torch.Tensor:
        """Per-item weights [B] of the MSE: min-SNR-gamma, expressed for the prediction type."""
        if self.min_snr_gamma is None:
            return torch.ones(t.shape[0], device=t.device)
        alpha = self.noise.alphas_cumprod.to(t.device)[t]
        snr = alpha / (1 - alpha)
        clipped = torch.clamp(snr, max=self.min_snr_gamma)
        return clipped / (snr + 1) if self.prediction_type == "v_prediction" else clipped / snr

    def diffusion_loss(self, z0, cond, noise, t, reduce: bool = True) -> torch.Tensor:
        zt = self.noise.add_noise(z0, noise, t)
        pred = self.model(zt, t, encoder_hidden_states=None, class_labels=cond).sample
        mse = F.mse_loss(pred.float(), self.target(z0, noise, t), reduction="none").mean(dim=(1, 2, 3))
        return (mse * self.loss_weights(t)).mean() if reduce else mse

    def run_step(self, batch: dict) -> dict[str, torch.Tensor]:
        if "latents" in batch:
            z0, audio_emb = batch["latents"], batch["audio_emb"]
        else:
            wav = self.random_gain(batch["audio"])
            z0, audio_emb = self.latents(wav), self.audio_embeddings(wav)
        cond = self.conditions(audio_emb, batch["captions"], batch.get("ids"))
        noise = torch.randn_like(z0)
        t = torch.randint(0, self.noise.config.num_train_timesteps, (z0.shape[0],), device=z0.device)
        loss = self.diffusion_loss(z0, cond, noise, t)
        return {"loss": loss}

    # -- evaluation --
    def pipeline(self):
        """A :class:`TTAPipeline` over the UNet being trained and the frozen parts."""
        from tta.pipeline import TTAPipeline

        pipe = TTAPipeline(self.unwrapped_model, self.vae, self.vocoder, self.clap, self.noise_schedule)
        return pipe.set_retrieval(self.index) if self.index is not None else pipe

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out denoising loss at fixed timesteps and noise (conditioned on each clip's CLAP audio embedding;
        lower is better); per timestep, how much the condition lowers it against the unconditional (empty
        text) prediction (``cond_gain_t{t}``: about 0 for a UNet that ignores its condition there); and
        generations of ``eval_prompts``: audio and mels to TensorBoard, and the share whose prompt's class the
        CLAP ranks first among the corpus classes."""
        device = self.accelerator.device
        out: dict[str, float] = {}
        g = torch.Generator().manual_seed(self.seed)
        losses = []
        gains: dict[int, list[float]] = {t: [] for t in self.eval_timesteps}
        null = self.null_embedding(device)
        for wav in self.evaluation_audio():
            n = wav.numel() // (self.hop * self.frames_multiple) * (self.hop * self.frames_multiple)
            if n == 0:
                continue
            wav = wav[None, :n].to(device)
            z0 = self.latents(wav, generator=g)
            cond = self.audio_embeddings(wav)
            for t in self.eval_timesteps:
                noise = torch.randn(z0.shape, generator=g).to(device)
                tt = torch.full((1,), t, device=device, dtype=torch.long)
                mse = float(self.diffusion_loss(z0, cond, noise, tt, reduce=False)[0])
                losses.append(mse)
                gains[t].append(float(self.diffusion_loss(z0, null, noise, tt, reduce=False)[0]) - mse)
        if losses:
            out["val_mse"] = sum(losses) / len(losses)
            for t, v in gains.items():
                out[f"cond_gain_t{t}"] = sum(v) / len(v)
        if self.eval_prompts and self.accelerator.is_main_process:
            out.update(self.evaluate_generation())
        return out

    @torch.no_grad()
    def evaluate_generation(self) -> dict[str, float]:
        pipe = self.pipeline()
        result = pipe(
            self.eval_prompts,
            audio_length_in_s=self.eval_seconds_generated,
            num_inference_steps=self.eval_steps,
            guidance_scale=self.eval_guidance,
            seed=self.seed,
            progress=False,
        )
        audio = torch.as_tensor(result.audios)
        mels = self.log_mel(audio.to(self.accelerator.device))
        for i, prompt in enumerate(self.eval_prompts[:4]):
            key = "ldm/" + "_".join(prompt.split())[:40]
            self.log_media(audio={key: audio[i]}, images={key: mels[i].T})
        out = {}
        hits = self.prompt_class_hits(audio)
        if hits:
            out["gen_top1"] = sum(hits) / len(hits)
        return out

    def prompt_class_hits(self, audio: torch.Tensor) -> list[bool]:
        """For the eval prompts that name one corpus class (by its captions), whether the CLAP ranks that class
        first for the generated audio (classes prompted as ``the sound of {class}``)."""
        from tta.data.captions import class_prompt
        from tta.evaluation.clap_zero_shot import class_text_embeddings, embed_clips

        classes = self.corpus_classes()
        wanted = [prompt_class(p, classes) for p in self.eval_prompts]
        keep = [i for i, c in enumerate(wanted) if c is not None]
        if not keep:
            return []
        emb = embed_clips(self.clap, [audio[i] for i in keep])
        text = class_text_embeddings(self.clap, classes, [class_prompt]).to(emb.device)
        best = (emb @ text.T).argmax(dim=1).tolist()
        return [classes[b] == wanted[i] for b, i in zip(best, keep)]

    def corpus_classes(self) -> list[str]:
        if not hasattr(self, "_classes"):
            labels = set()
            for line in (self.corpus_root() / "manifest.jsonl").read_text().splitlines():
                if line.strip():
                    labels.update(json.loads(line)["labels"])
            self._classes = sorted(labels)
        return self._classes

    # -- export --
    def export_model(self, model, folder: Path) -> None:
        from tta.loading import save_components
        from tta.pipeline import _clap_backend_name

        save_components(
            folder,
            model,
            self.vae,
            self.vocoder,
            self.clap,
            self.noise_schedule,
            _clap_backend_name(self.clap),
            self.sampling_defaults,
        )


DDPM_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "clip_sample")


def prompt_class(prompt: str, classes: list[str]) -> str | None:
    """The one corpus class whose name occurs in the prompt as whole words (``"rain falling"`` -> rain), else
    None (no class, or several: a two-source prompt)."""
    text = prompt.lower()
    found = [c for c in classes if re.search(rf"\b{re.escape(c.lower())}\b", text)]
    return found[0] if len(found) == 1 else None
