"""``TTAPipeline``: text -> CLAP embedding -> guided latent diffusion -> VAE -> vocoder -> waveform.

The one place the generation steps run in order. The CLI, the demo and the evaluator call it; samplers live in
:mod:`tta.sampling.schedulers`, guidance in :mod:`tta.sampling.guidance`, the loop in :mod:`tta.sampling.loop`,
and folder I/O in :mod:`tta.loading`.
"""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tta.audio.limiter import DEFAULT_PEAK_LIMIT, check_peak_limit, limit_peaks
from tta.editing.regions import EditRegion
from tta.errors import InputError, ModelLoadError
from tta.models.clap.base import ClapEncoder
from tta.sampling import (
    DEFAULT_DURATION_S,
    denoise,
    guided_denoiser,
    latent_layout,
    make_scheduler,
    sampler_name,
)
from tta.sampling.loop import StepCallback
from tta.sampling.mixing import COMPOSE_MODES, DEFAULT_MIX_GAIN_DB, expand_sources, mix_sources, sound_noise

DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 2.5
MAX_STEPS = 500  # more steps gain nothing, and some diffusers schedulers break near num_train_timesteps
MAX_SEED = 2**63 - 1
VOCODER_MARGIN_FRAMES = 32  # extra mel frames vocoded past the kept end, then cut (receptive field)
SUPER_RESOLUTION_PROMPT = "high quality, clear, full bandwidth recording"


@dataclass
class TTAPipelineOutput:
    """What :meth:`TTAPipeline.__call__` returns.

    Attributes:
        audios: waveforms, numpy float32 [B, N] (``output_type="np"``) or a torch tensor ("pt"), with
            ``B = len(prompts) * num_waveforms_per_prompt``, prompt-major.
        sample_rate: Hz (16000).
        seeds: the seed of each waveform (regenerate one alone with ``seed=seeds[i]``); None when the caller
            gave ``latents`` or ``generator``.
        clap_scores: CLAP text-audio cosine similarity of each kept waveform when ``num_candidates > 1``.
        peak_gains: the gain :func:`tta.audio.limiter.limit_peaks` applied to each waveform, numpy [B] (1.0: its
            peak was already under ``peak_limit``; below 1: it was scaled down to keep inside full scale).
        sources: for each waveform, the texts it was conditioned on: ``[prompt]``, or the prompt's sound parts
            when it was composed (``compose``).
        retrieved: with a retrieval index (:meth:`TTAPipeline.set_retrieval`), for each waveform and each of its
            ``sources``, the index entries it was conditioned on: ``{"text", "clips": [{"id", "path", "captions",
            "score"}, ...]}``, nearest first; None without one.
    """

    audios: Any
    sample_rate: int
    seeds: list[int] | None = None
    clap_scores: np.ndarray | None = None
    peak_gains: np.ndarray | None = None
    sources: list[list[str]] | None = None
    retrieved: list[list[dict]] | None = None


@dataclass
class EditOutput(TTAPipelineOutput):
    """What :meth:`TTAPipeline.edit` returns: the audio as for generation, plus

    Attributes:
        mels: the final log-mels [B, T, n_mels] (numpy or torch like ``audios``), T = ceil(N / hop), as decoded
            (before ``peak_limit`` scales the waveform).
        region: the :class:`tta.editing.EditRegion` regenerated (None for style transfer), ranges clipped to the
            input and the cut-off resolved.
    """

    mels: Any = None
    region: EditRegion | None = None


def _clap_backend_name(clap: ClapEncoder) -> str:
    from tta.models.clap import BACKENDS

    path = f"{type(clap).__module__}:{type(clap).__name__}"
    for name, target in BACKENDS.items():
        if target == path:
            return name
    return getattr(clap, "backend", type(clap).__name__)


def _check_prompts(prompt: str | list[str], what: str = "prompt") -> list[str]:
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise InputError(f"{what} must be a non-empty string or a non-empty list of strings")
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise InputError(f"{what} must not be empty or whitespace, got {p!r}")
    return list(prompts)


def _check_unit(value: Any, what: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"{what} must be a number in [0, 1], got {value!r}") from err
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise InputError(f"{what} must be in [0, 1], got {value}")
    return value


def _check_gain_db(value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not -60.0 <= value <= 20.0:
        raise InputError(f"mix_gain_db must be a number of dB in [-60, 20], got {value!r}")
    return float(value)


def _check_positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)


class TTAPipeline:
    """Text-to-audio generation with an AudioLDM-style model.

    Args:
        unet: diffusers ``UNet2DConditionModel`` conditioned on CLAP embeddings through ``class_labels``.
        vae: diffusers ``AutoencoderKL`` over log-mels [B, 1, T, n_mels].
        vocoder: log-mel [B, T, n_mels] -> waveform [B, T * hop]: transformers' ``SpeechT5HifiGan`` or tta's
            ``ISTFTVocoder``.
        clap: a :class:`ClapEncoder` giving the conditioning text embeddings (``pipe.clap``).
        scheduler_config: the noise schedule (a diffusers scheduler config) the UNet was trained with.
        reranker: optional CLAP used for ``num_candidates > 1`` (default: ``clap`` when it has an audio tower).
        name_or_path: where the model came from (recorded in sidecars).
        sampling_defaults: the model's own defaults for ``guidance_scale`` and ``num_inference_steps`` (the
            ``"sampling"`` entry of its ``model_index.json``), used when a call leaves them out.
        prior: optional :class:`~tta.models.prior.RetrievalPrior` (``pipe.prior``) that moves every non-empty
            prompt's text embedding towards the audio embeddings the UNet trained on; ``pipe.prior = None``
            conditions on the raw text embeddings.

    A retrieval-conditioned model (a :class:`~tta.models.retrieval.RetrievalUNet`, from a folder with
    ``retrieval/``) also attends to each prompt's nearest recordings in a retrieval index, once one is set with
    :meth:`set_retrieval`; without an index it generates from its null tokens.
    """

    def __init__(
        self,
        unet: torch.nn.Module,
        vae: torch.nn.Module,
        vocoder: torch.nn.Module,
        clap: ClapEncoder,
        scheduler_config: dict[str, Any],
        reranker: ClapEncoder | None = None,
        name_or_path: str | None = None,
        sampling_defaults: dict[str, Any] | None = None,
        prior: torch.nn.Module | None = None,
    ):
        from tta.loading import check_sampling_defaults

        self.unet = unet
        self.vae = vae
        self.vocoder = vocoder
        self.clap = clap
        self.scheduler_config = dict(scheduler_config)
        self.reranker = reranker
        self.name_or_path = name_or_path
        self.sampling_defaults = check_sampling_defaults(sampling_defaults or {}, "sampling_defaults")
        self.prior = prior
        self.retrieval = None  # a RetrievalIndex (set_retrieval)
        self.retrieval_top_k: int | None = None  # None: the UNet takes no neighbours
        self._own_prior = None  # the model's prior while an index extends it
        self._model_hash: str | None = None
        self._clap_fingerprint: str | None = None
        self._fast = False

    # ------------------------------------------------------------------ loading / saving

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        torch_dtype: torch.dtype | None = None,
        fast: bool = True,
    ) -> TTAPipeline:
        """Load a tta model folder or a diffusers AudioLDM folder (no network).

        Args:
            path: the folder; None loads the default model (``checkpoints/``, or ``$TTA_MODEL``).
            device: where to put the modules.
            torch_dtype: dtype of the UNet, VAE and vocoder (default float32). ``torch.bfloat16`` runs ~1.8x
                faster on CPUs with AVX512-BF16 / AMX at ~1% waveform difference; CLAP and sampler stay float32.
            fast: apply CPU/GPU speed-ups that keep the maths (channels-last memory format).

        Raises:
            ModelLoadError: no model at ``path`` (or no default installed), or a file is missing or corrupt.
        """
        from tta.loading import INDEX_NAME, load_components
        from tta.paths import default_model_dir

        if path is None:
            folder = default_model_dir()
            if not (folder / INDEX_NAME).is_file():
                raise ModelLoadError(
                    f"no default model is installed ({folder / INDEX_NAME} not found); pass a model folder: "
                    "`--model PATH` (CLI) or TTAPipeline.from_pretrained(PATH) with a tta or diffusers AudioLDM "
                    "folder, set $TTA_MODEL, or `tta convert` an original AudioLDM .ckpt into a tta folder"
                )
        else:
            folder = Path(path).expanduser().resolve()
        parts = load_components(folder)
        pipe = cls(
            parts.unet,
            parts.vae,
            parts.vocoder,
            parts.clap,
            parts.scheduler_config,
            name_or_path=str(folder),
            sampling_defaults=parts.sampling_defaults,
            prior=parts.prior,
        )
        pipe.to(device, torch_dtype)
        if fast:
            pipe.enable_fast_inference()
        return pipe

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write a tta model folder (every component with its config, weights as safetensors), atomically."""
        from tta.loading import save_components

        # safetensors stores contiguous tensors: undo channels-last while saving
        self.unet.to(memory_format=torch.contiguous_format)
        self.vae.to(memory_format=torch.contiguous_format)
        try:
            return save_components(
                folder,
                self.unet,
                self.vae,
                self.vocoder,
                self.clap,
                self.scheduler_config,
                _clap_backend_name(self.clap),
                self.sampling_defaults,
                self.prior,
            )
        finally:
            if self._fast:
                self.enable_fast_inference()

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> TTAPipeline:
        """Move every module to ``device``; cast the UNet, VAE and vocoder to ``dtype`` (CLAP stays float32)."""
        for module in (self.unet, self.vae, self.vocoder, self.clap, self.reranker, self.prior):
            if module is not None and device is not None:
                module.to(device)
        if dtype is not None:
            from diffusers.utils import logging as diffusers_logging

            verbosity = diffusers_logging.get_verbosity()
            diffusers_logging.set_verbosity_error()  # silence "modules that should be kept in float32: []"
            try:
                for module in (self.unet, self.vae, self.vocoder):
                    module.to(dtype)
            finally:
                diffusers_logging.set_verbosity(verbosity)
        return self

    def enable_fast_inference(self, unet_channels_last: bool | None = None) -> TTAPipeline:
        """Channels-last memory format for the 2-D convolution stacks (same maths, faster kernels).

        The VAE decoder gains ~1.2x on CPU. The UNet does not on CPU (measured on this project's machines at
        5-10 s of audio: 4% slower with 1 or 2 threads), so by default it is switched only on other devices.
        """
        if unet_channels_last is None:
            unet_channels_last = self.device.type != "cpu"
        if unet_channels_last:
            self.unet.to(memory_format=torch.channels_last)
        self.vae.to(memory_format=torch.channels_last)
        self._fast = True
        return self

    @property
    def clap_fingerprint(self) -> str | None:
        """:func:`tta.loading.clap_fingerprint` of the model folder's CLAP (computed once), or None if not from a
        folder with ``clap/``."""
        if self._clap_fingerprint is None and self.name_or_path and (Path(self.name_or_path) / "clap").is_dir():
            from tta.loading import clap_fingerprint

            self._clap_fingerprint = clap_fingerprint(Path(self.name_or_path) / "clap")
        return self._clap_fingerprint

    @property
    def is_retrieval_model(self) -> bool:
        """Whether the UNet is retrieval-conditioned (:class:`~tta.models.retrieval.RetrievalUNet`)."""
        from tta.models.retrieval import RetrievalUNet

        return isinstance(self.unet, RetrievalUNet)

    def set_retrieval(self, index, top_k: int | None = None, extend_prior: bool = True) -> TTAPipeline:
        """Draw on the recordings of ``index`` (a :class:`~tta.retrieval.RetrievalIndex` or its folder; None: stop).

        * A retrieval-conditioned model attends to each prompt's ``top_k`` nearest entries (default: as many as it
          was trained with); the output's ``retrieved`` lists them.
        * With ``extend_prior``, a model's retrieval :attr:`prior` also searches the index's entries, beside its
          own bank (entries already in the bank are not added twice), so a prompt that names a sound only the
          index holds gets that sound's CLAP audio embedding as its condition. This works for a plain model with
          a prior too.

        Raises:
            InputError: the model can use no index (neither retrieval-conditioned nor with a prior), or the index
                was built with another CLAP or VAE.
            ModelLoadError: the index folder is missing or corrupt.
        """
        if self._own_prior is not None:
            self.prior = self._own_prior  # undo an earlier index's extension
        self.retrieval, self.retrieval_top_k, self._own_prior = None, None, None
        if index is None:
            return self
        if not self.is_retrieval_model and (self.prior is None or not extend_prior):
            raise InputError(
                "this model can use no retrieval index: it is not retrieval-conditioned (its folder has no "
                "retrieval/; train one with `tta train ldm --retrieval INDEX`) and has no prior/ to extend"
            )
        from tta.models.vae import latent_grid
        from tta.retrieval import RetrievalIndex

        where = "retrieval index"
        if not isinstance(index, RetrievalIndex):
            where = str(index)
            index = RetrievalIndex.load(index)
        grid = latent_grid(self.vae, self.vocoder.config.model_in_dim)
        index.check_compatible(self.clap_fingerprint, self.clap.embedding_dim, grid, where)
        if self.is_retrieval_model:
            if index.latent.shape[1] != self.unet.encoder.config.latent_dim:
                raise InputError(f"{where}: its latent summaries do not fit this model's retrieval encoder")
            top_k = self.unet.top_k if top_k is None else _check_positive_int(top_k, "top_k")
            self.retrieval_top_k = top_k
        if self.prior is not None and extend_prior:
            self._own_prior = self.prior
            self.prior = self.prior.extended(index.audio, index.keys())
        self.retrieval = index
        return self

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def default_steps(self) -> int:
        """Sampler steps when a call gives none: the model's own default, else :data:`DEFAULT_STEPS`."""
        return int(self.sampling_defaults.get("num_inference_steps", DEFAULT_STEPS))

    @property
    def default_guidance(self) -> float:
        """Guidance scale when a call gives none: the model's own default, else :data:`DEFAULT_GUIDANCE`."""
        return float(self.sampling_defaults.get("guidance_scale", DEFAULT_GUIDANCE))

    @property
    def sample_rate(self) -> int:
        return int(self.vocoder.config.sampling_rate)

    @property
    def hop_length(self) -> int:
        return int(np.prod(self.vocoder.config.upsample_rates))

    @property
    def model_hash(self) -> str | None:
        """Content hash of the model folder's configs and weights (computed once), or None if not from a folder."""
        if self._model_hash is None and self.name_or_path and Path(self.name_or_path).is_dir():
            from tta.loading import model_hash

            self._model_hash = model_hash(self.name_or_path)
        return self._model_hash

    def layout(self, audio_length_in_s: float):
        """The :class:`~tta.sampling.LatentLayout` (latent shape, samples kept) for a duration in seconds."""
        from tta.models.unet import unet_downsample_factor
        from tta.models.vae import vae_downsample_factor

        return latent_layout(
            audio_length_in_s,
            sample_rate=self.sample_rate,
            hop_length=self.hop_length,
            latent_channels=int(self.unet.config.in_channels),
            n_mels=int(self.vocoder.config.model_in_dim),
            vae_factor=vae_downsample_factor(self.vae),
            unet_factor=unet_downsample_factor(self.unet),
        )

    # ------------------------------------------------------------------ generation

    @torch.inference_mode()
    def __call__(
        self,
        prompt: str | list[str],
        audio_length_in_s: float = DEFAULT_DURATION_S,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        negative_prompt: str | list[str] | None = None,
        num_waveforms_per_prompt: int = 1,
        num_candidates: int = 1,
        sampler: str | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        seed: int | list[int] | None = None,
        latents: torch.Tensor | None = None,
        progress: bool = True,
        callback: StepCallback | None = None,
        output_type: str = "np",
        peak_limit: float | None = DEFAULT_PEAK_LIMIT,
        compose: bool | None = None,
        compose_mode: str = "mix",
        mix_gain_db: float = DEFAULT_MIX_GAIN_DB,
    ) -> TTAPipelineOutput:
        """Generate audio for one or more prompts.

        Args:
            prompt: a text or a list of B texts.
            audio_length_in_s: duration in seconds, > 0 and at most :data:`tta.sampling.MAX_DURATION_S`; any
                value works (latents are padded to what the UNet needs and the audio trimmed back).
            num_inference_steps: sampler steps (DPM-Solver++ is good at 10-25); default the model's
                (:attr:`sampling_defaults`), else :data:`DEFAULT_STEPS`.
            guidance_scale: classifier-free guidance scale, on when > 1; default the model's, else
                :data:`DEFAULT_GUIDANCE`.
            negative_prompt: text(s) to steer away from (one, or one per prompt); default the empty text.
            num_waveforms_per_prompt: waveforms kept per prompt.
            num_candidates: generate this many candidates per kept waveform and keep the one whose CLAP
                audio embedding is closest to the prompt's text embedding.
            sampler: "dpmpp-2m" (default), "ddim", "euler" or "unipc".
            generator: one ``torch.Generator`` for the whole batch, or one per generated latent.
            seed: an int (waveform i gets ``seed + i``, each from its own generator, so any one can be
                regenerated alone) or a list of one seed per generated latent. Default: a random seed.
            latents: starting noise [B * num_waveforms_per_prompt * num_candidates, C, H, W] (see :meth:`layout`);
                with ``compose_mode="mix"`` it starts a mixed prompt's first sound, the others' noise is seeded
                from the latent's index and the sound's place.
            progress: show a progress bar.
            callback: ``callback(i, t, latents)`` after each denoising step (with mixed prompts, one latent per
                sound).
            output_type: "np" (numpy [B, N]) or "pt" (torch tensor [B, N]).
            peak_limit: a waveform whose peak exceeds this (in (0, 1]) is scaled down to it as a whole, so files
                written from it do not clip; None returns the decoder's output as it is.
            compose: render a prompt that names several sounds ("a dog barking in the rain") as each of them
                (:mod:`tta.sampling.composition`); the model's retrieval prior decides which parts are sounds.
                None: on when the prior allows it (``max_sources`` >= 2 in ``prior/config.json``; with
                ``compose_mode="guidance"``, also guidance on); True: required (an error if impossible); False:
                every prompt is one condition.
            compose_mode: how a prompt split into sounds is rendered. "mix" (default): each sound sampled on its
                own latent and the waveforms summed (:mod:`tta.sampling.mixing`; a two-sound prompt costs two
                generations, batched); "guidance": one latent guided towards every sound at once
                (``eps_u + g * mean_j (eps_j - eps_u)``, :mod:`tta.sampling.guidance`).
            mix_gain_db: with ``compose_mode="mix"``, the level of each later sound against the first named
                (RMS, dB; the first is the foreground).

        Returns:
            TTAPipelineOutput: ``.audios`` [B * num_waveforms_per_prompt, N], ``.sample_rate``, ``.seeds``,
            ``.peak_gains``, ``.sources``.
        """
        # 1. Check inputs
        prompts = _check_prompts(prompt)
        negatives = self._check_negative(negative_prompt, len(prompts))
        per_prompt = _check_positive_int(num_waveforms_per_prompt, "num_waveforms_per_prompt")
        n_cand = _check_positive_int(num_candidates, "num_candidates")
        steps, guidance_scale, scheduler = self._check_sampling(
            num_inference_steps, guidance_scale, sampler, output_type
        )
        reranker = self._reranker() if n_cand > 1 else None
        peak_limit = check_peak_limit(peak_limit)
        compose = self._check_compose(compose, guidance_scale, compose_mode)
        mix_gain_db = _check_gain_db(mix_gain_db)

        # 2. Latent shape for the requested duration (padded for the UNet; audio trimmed in step 7)
        layout = self.layout(audio_length_in_s)
        total = len(prompts) * per_prompt * n_cand
        device = self.device

        # 3. Encode prompts (and negative prompts) with CLAP: [B, D] each (or each prompt's sounds), repeated;
        # with a retrieval index, each row followed by its nearest recordings' features
        found: dict[str, list[dict]] = {}
        cond, uncond, sources = self._encode_prompts(
            prompts, negatives, per_prompt * n_cand, guidance_scale, compose, found
        )

        # 4. Scheduler
        scheduler.set_timesteps(steps, device=device)

        # 5. Starting noise, one generator per latent when seeded (the sampler runs in float32)
        latents, seeds = self._prepare_latents(layout.latent_shape, total, generator, seed, latents)
        owner = None
        if compose_mode == "mix" and isinstance(cond, list):  # one latent per sound, mixed after decoding
            cond, uncond, owner = expand_sources(cond, uncond)
            latents = sound_noise(latents, owner, generator, seeds)
        latents = latents.to(device=device, dtype=torch.float32) * scheduler.init_noise_sigma

        # 6. Denoising loop with classifier-free guidance (one batched UNet call per step)
        model = guided_denoiser(self.unet, cond, uncond, guidance_scale)
        latents = denoise(model, scheduler, latents, progress=progress, callback=callback)

        # 7. Decode: latents -> log-mel [B, 1, T, n_mels] -> waveform [B, T * hop], trimmed to the duration
        audio = self.decode(latents, num_frames=math.ceil(layout.num_samples / self.hop_length))
        audio = audio[:, : layout.num_samples]
        if owner is not None:
            audio = mix_sources(audio, owner, mix_gain_db)

        # 8. Keep the best of each group of candidates; post-process
        scores = None
        if reranker is not None:
            audio, keep, scores = self._rerank(reranker, prompts, audio, per_prompt, n_cand)
            seeds = [seeds[i] for i in keep] if seeds is not None else None
        audio, gains = limit_peaks(audio.float().cpu(), peak_limit)
        return TTAPipelineOutput(
            audios=audio.numpy() if output_type == "np" else audio,
            sample_rate=self.sample_rate,
            seeds=seeds,
            clap_scores=scores,
            peak_gains=gains.numpy(),
            sources=[list(parts) for parts in sources for _ in range(per_prompt)],
            retrieved=_retrieved(sources, found, per_prompt) if found else None,
        )

    @torch.inference_mode()
    def edit(
        self,
        audio: str | os.PathLike | np.ndarray,
        prompt: str,
        sample_rate: int | None = None,
        strength: float = 0.6,
        region: EditRegion | None = None,
        feather_s: float = 0.05,
        negative_prompt: str | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        num_waveforms: int = 1,
        sampler: str | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        seed: int | list[int] | None = None,
        progress: bool = True,
        callback: StepCallback | None = None,
        output_type: str = "np",
        peak_limit: float | None = DEFAULT_PEAK_LIMIT,
        compose: bool | None = None,
    ) -> EditOutput:
        """Edit existing audio under a prompt: style transfer, inpainting or super-resolution.

        The input is encoded to latents, noised to ``strength`` and denoised under ``prompt`` by the same sampler
        loop as :meth:`__call__`. With a ``region``, only that part is regenerated: after each step the kept
        latent cells are put back at the current noise level, and the decoded log-mel takes the input's VAE
        round trip on the kept mel cells (fading into the new part over ``feather_s`` at time borders).

        Args:
            audio: a file path, or a waveform [N] / [C, N] with its ``sample_rate``; resampled to the model's
                rate, mixed to mono, peak-normalised to 0.5 (AudioLDM's input pre-processing); 0.1 to 60 s.
            prompt: the text the result should match.
            strength: in [0, 1], how much of the sampling runs: 0 returns the input's VAE + vocoder round trip,
                1 starts from pure noise (the usual choice for inpainting and super-resolution).
            region: what to regenerate (:class:`tta.editing.EditRegion`); None: everything (style transfer).
            feather_s: length of the fade at the borders of regenerated time ranges, seconds.
            num_waveforms: variations generated (seeds ``seed``, ``seed + 1``...).
            Other arguments as in :meth:`__call__`.

        Returns:
            EditOutput: ``.audios`` [num_waveforms, N] with N the input's samples, ``.mels`` the final log-mels
            [num_waveforms, T, n_mels] (T = ceil(N / hop)), ``.seeds``, ``.region`` as checked.
        """
        from tta.audio.io import normalize_waveform
        from tta.editing import KeepBlend, img2img_timesteps, load_edit_audio
        from tta.editing.regions import keep_weights, latent_keep, mel_bin_tops
        from tta.models.vae import vae_downsample_factor

        # 1. Check inputs; read the audio
        prompts = _check_prompts(prompt)
        if len(prompts) != 1:
            raise InputError("edit takes one prompt")
        negatives = self._check_negative(negative_prompt, 1)
        total = _check_positive_int(num_waveforms, "num_waveforms")
        strength = _check_unit(strength, "strength")
        peak_limit = check_peak_limit(peak_limit)
        steps, guidance_scale, scheduler = self._check_sampling(
            num_inference_steps, guidance_scale, sampler, output_type
        )
        compose = self._check_compose(compose, guidance_scale, "guidance")
        wav = normalize_waveform(load_edit_audio(audio, sample_rate, self.sample_rate))
        if region is not None:
            region = region.check(wav.size / self.sample_rate, self.sample_rate)
        device = self.device

        # 2. Input -> log-mel [1, 1, T, n_mels] (padded with silence to the UNet's frames) -> latents [1, C, H, W]
        layout = self.layout(wav.size / self.sample_rate)
        frontend = self.mel_frontend().to(device)
        mel = frontend(torch.from_numpy(wav).to(device))
        mel = torch.nn.functional.pad(mel, (0, 0, 0, layout.mel_frames - mel.shape[0]), value=math.log(1e-5))
        x0 = self.encode_mel(mel[None, None]).expand(total, -1, -1, -1)

        # 3. Encode the prompt (and negative prompt) with CLAP (and the retrieval index, if set)
        found: dict[str, list[dict]] = {}
        cond, uncond, sources = self._encode_prompts(prompts, negatives, total, guidance_scale, compose, found)

        # 4. Scheduler: the last `strength` of the steps
        scheduler.set_timesteps(steps, device=device)
        timesteps = img2img_timesteps(scheduler, steps, strength)

        # 5. Start: the input's latents noised to the first timestep (pure noise at strength 1, as diffusers)
        noise, seeds = self._prepare_latents(layout.latent_shape, total, generator, seed, None)
        noise = noise.to(device=device, dtype=torch.float32)
        if strength >= 1.0:
            latents = noise * scheduler.init_noise_sigma
        elif len(timesteps):
            latents = scheduler.add_noise(x0, noise, timesteps[:1])
        else:
            latents = x0

        # 6. Denoising loop with guidance; the kept part of the input put back after each step
        blend, weights = None, None
        if region is not None:
            bin_tops = mel_bin_tops(frontend.mel_basis, self.sample_rate, frontend.n_fft)
            regen_t, regen_f = region.mel_masks(layout.mel_frames, self.sample_rate / self.hop_length, bin_tops)
            keep = latent_keep(regen_t, regen_f, vae_downsample_factor(self.vae))
            blend = KeepBlend(scheduler, timesteps, x0, noise, keep)
            weights = keep_weights(regen_t, regen_f, round(feather_s * self.sample_rate / self.hop_length), 1)
        model = guided_denoiser(self.unet, cond, uncond, guidance_scale)
        latents = denoise(model, scheduler, latents, timesteps, progress=progress, callback=callback, after_step=blend)

        # 7. Decode to log-mel; kept cells from the input's round trip; vocode, trim to the input's length
        out_mel = self.decode_mel(latents)  # [B, 1, T, n_mels]
        if weights is not None:
            weights = weights.to(device=device, dtype=out_mel.dtype)
            out_mel = weights * self.decode_mel(x0[:1]) + (1.0 - weights) * out_mel
        num_frames = math.ceil(wav.size / self.hop_length)
        audio, gains = limit_peaks(self.vocode(out_mel, num_frames)[:, : wav.size].float().cpu(), peak_limit)
        out_mel = out_mel[:, 0, :num_frames].float().cpu()
        return EditOutput(
            audios=audio.numpy() if output_type == "np" else audio,
            sample_rate=self.sample_rate,
            seeds=seeds,
            peak_gains=gains.numpy(),
            sources=[list(sources[0]) for _ in range(total)],
            retrieved=_retrieved(sources, found, total) if found else None,
            mels=out_mel.numpy() if output_type == "np" else out_mel,
            region=region,
        )

    def style_transfer(self, audio, prompt: str, strength: float = 0.6, **kwargs: Any) -> EditOutput:
        """Audio-to-audio: the whole input re-imagined under ``prompt`` (see :meth:`edit`)."""
        return self.edit(audio, prompt, strength=strength, **kwargs)

    def inpaint(
        self, audio, prompt: str, ranges: list[tuple[float, float]], strength: float = 1.0, **kwargs: Any
    ) -> EditOutput:
        """Regenerate the time ``ranges`` (seconds) under ``prompt``, keep the rest (see :meth:`edit`)."""
        from tta.editing import EditRegion

        return self.edit(audio, prompt, strength=strength, region=EditRegion(ranges=tuple(ranges)), **kwargs)

    def super_resolve(
        self,
        audio,
        prompt: str = SUPER_RESOLUTION_PROMPT,
        cutoff_hz: float | None = None,
        sample_rate: int | None = None,
        strength: float = 1.0,
        **kwargs: Any,
    ) -> EditOutput:
        """Bandwidth extension: keep the mel bins below ``cutoff_hz`` (default: detected from the input's
        spectrum, :func:`tta.editing.detect_cutoff_hz`) and generate the ones above (see :meth:`edit`)."""
        from tta.editing import EditRegion, detect_cutoff_hz, load_edit_audio

        if cutoff_hz is None:
            wav = load_edit_audio(audio, sample_rate, self.sample_rate)
            cutoff_hz = detect_cutoff_hz(wav, self.sample_rate)
            if cutoff_hz >= 0.95 * self.sample_rate / 2:
                raise InputError(
                    f"the input already has content up to {cutoff_hz:.0f} Hz: no missing band to fill "
                    "(give a cut-off frequency to regenerate above it anyway)"
                )
            audio, sample_rate = wav, self.sample_rate
        region = EditRegion(above_hz=cutoff_hz)
        return self.edit(audio, prompt, sample_rate=sample_rate, strength=strength, region=region, **kwargs)

    def decode(self, latents: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """Latents [B, C, H, W] -> waveforms [B, T * hop], float32 (VAE decoder, then the vocoder).

        ``num_frames`` keeps only the first T mel frames for the vocoder (default: all ``H * vae_factor``):
        frames that only pad the latents for the UNet are not worth vocoding.
        """
        return self.vocode(self.decode_mel(latents), num_frames)

    def decode_mel(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [B, C, H, W] -> log-mel [B, 1, H * vae_factor, W * vae_factor] (the VAE decoder)."""
        z = latents.to(self.vae.dtype) / self.vae.config.scaling_factor
        return self.vae.decode(z).sample

    def vocode(self, mel: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """Log-mel [B, 1, T, n_mels] -> waveforms [B, T' * hop] (float32) of its first ``num_frames`` frames.

        A few frames past ``num_frames`` are vocoded too and cut off afterwards, so the kept end sounds as it
        does when the whole mel is vocoded (the vocoder's receptive field spans several frames).
        """
        keep = mel.shape[2] if num_frames is None else min(int(num_frames), mel.shape[2])
        mel = mel[:, 0, : keep + VOCODER_MARGIN_FRAMES].to(self.vocoder.dtype).contiguous()  # [B, T'', n_mels]
        return self.vocoder(mel).float()[:, : keep * self.hop_length]  # [B, T' * hop]

    def encode_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, 1, T, n_mels] -> latents [B, C, T / f, n_mels / f]: the VAE posterior's mode times the
        scaling factor (deterministic; what the UNet was trained on)."""
        posterior = self.vae.encode(mel.to(device=self.device, dtype=self.vae.dtype)).latent_dist
        return posterior.mode().float() * self.vae.config.scaling_factor

    def mel_frontend(self):
        """The log-mel front-end (:class:`tta.audio.mel.MelSpectrogram`) matching the vocoder: its rate, hop and
        mel bins, n_fft 1024, 0 Hz to Nyquist (AudioLDM's)."""
        from tta.audio.mel import MelSpectrogram

        return MelSpectrogram(
            sample_rate=self.sample_rate,
            hop_length=self.hop_length,
            n_mels=int(self.vocoder.config.model_in_dim),
            f_max=self.sample_rate / 2,
        )

    # ------------------------------------------------------------------ helpers

    def _check_sampling(
        self, num_inference_steps: Any, guidance_scale: Any, sampler: str | None, output_type: str
    ) -> tuple[int, float, Any]:
        """Checked steps and guidance (None: the model's default), and a fresh scheduler for ``sampler``."""
        num_inference_steps = self.default_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = self.default_guidance if guidance_scale is None else guidance_scale
        steps = _check_positive_int(num_inference_steps, "num_inference_steps")
        try:
            guidance_scale = float(guidance_scale)
        except (TypeError, ValueError) as err:
            raise InputError(f"guidance_scale must be a number, got {guidance_scale!r}") from err
        if not math.isfinite(guidance_scale):
            raise InputError(f"guidance_scale must be finite, got {guidance_scale}")
        if output_type not in ("np", "pt"):
            raise InputError(f"output_type must be 'np' or 'pt', got {output_type!r}")
        scheduler = make_scheduler(sampler_name(sampler), self.scheduler_config)
        max_steps = min(MAX_STEPS, int(scheduler.config.num_train_timesteps) // 2)
        if steps > max_steps:
            raise InputError(f"num_inference_steps must be at most {max_steps}, got {steps}")
        return steps, guidance_scale, scheduler

    def _check_compose(self, compose: Any, guidance_scale: float, mode: str) -> bool:
        """Whether prompts are split into sounds: see ``compose`` and ``compose_mode`` in :meth:`__call__`."""
        if mode not in COMPOSE_MODES:
            raise InputError(f"compose_mode must be one of {', '.join(COMPOSE_MODES)}, got {mode!r}")
        able = self.prior is not None and getattr(self.prior, "max_sources", 1) > 1
        if compose is None:
            return able and (mode == "mix" or guidance_scale > 1.0)
        if not isinstance(compose, bool):
            raise InputError(f"compose must be True, False or None, got {compose!r}")
        if compose and not able:
            why = "has no retrieval prior" if self.prior is None else "has a prior with max_sources 1"
            raise InputError(
                f"compose=True needs the model's retrieval prior with max_sources >= 2; this pipeline {why} "
                "(`tta prior build --max-sources 2`)"
            )
        if compose and mode == "guidance" and guidance_scale <= 1.0:
            raise InputError(f"composed guidance needs guidance (guidance_scale > 1), got {guidance_scale}")
        return compose

    def _encode_prompts(
        self,
        prompts: list[str],
        negatives: list[str],
        repeat: int,
        guidance_scale: float,
        compose: bool = False,
        found: dict[str, list[dict]] | None = None,
    ) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor | None, list[list[str]]]:
        """CLAP text embeddings of the prompts and (with guidance) negatives, each [len(prompts) * repeat, D];
        with a :attr:`prior`, every non-empty text's embedding goes through it (the empty text, the unconditional
        branch the UNet was trained with, never does).

        With ``compose``, a prompt whose parts the prior takes as several sounds is conditioned on each of them:
        ``cond`` is then a list of one [J, D] tensor per latent. Also returns each prompt's condition texts.

        With a retrieval index (:meth:`set_retrieval`), every row is followed by the packed features of its text's
        nearest index entries (none for the empty text), and ``found`` gets each text's entries.
        """
        from tta.sampling.composition import split_prompt

        do_guidance = guidance_scale > 1.0
        raw: dict[str, torch.Tensor] = {}  # each text alone: its embedding never depends on the batch

        def embed(text: str, mapped: bool = True) -> torch.Tensor:
            if text not in raw:
                raw[text] = self.clap.encode_text([text])
            if not mapped:
                return raw[text]
            row = self.prior(raw[text]) if self.prior is not None and text.strip() else raw[text]
            if self.retrieval_top_k is not None:
                row = torch.cat([row.float(), self._neighbour_features(text, raw[text], found).to(row.device)], 1)
            return row

        sources = []
        for prompt in prompts:
            parts = split_prompt(prompt) if compose else [prompt]
            taken = self.prior.sound_parts(torch.cat([embed(p, mapped=False) for p in parts])) if compose else []
            sources.append([parts[i] for i in taken] or [prompt])

        def stack(texts: list[str]) -> torch.Tensor:
            return torch.cat([embed(text) for text in texts]).to(device=self.device, dtype=torch.float32)

        uncond = stack(negatives).repeat_interleave(repeat, dim=0) if do_guidance else None
        if all(len(texts) == 1 for texts in sources):
            cond = stack([texts[0] for texts in sources]).repeat_interleave(repeat, dim=0)
        else:
            cond = [stack(texts) for texts in sources for _ in range(repeat)]
        return cond, uncond, sources

    def _neighbour_features(self, text: str, query: torch.Tensor, found: dict[str, list[dict]] | None) -> torch.Tensor:
        """[1, K * F]: the packed features of ``text``'s K nearest index entries (all null for the empty text)."""
        from tta.models.retrieval import pack_neighbours

        index, k = self.retrieval, self.retrieval_top_k
        from tta.retrieval import Neighbours

        hits = index.search(query, k) if text.strip() else Neighbours.none(1, k)
        rows = hits.rows.clamp(min=0)
        if text.strip() and found is not None:
            found[text] = [
                {
                    "id": index.entries[r].get("id"),
                    "path": index.entries[r].get("path"),
                    "captions": index.entries[r].get("captions", []),
                    "score": round(float(s), 4),
                }
                for r, s in zip(hits.rows[0].tolist(), hits.scores[0].tolist())
                if r >= 0
            ]
        return pack_neighbours(index.audio[rows], index.latent[rows], hits.scores.clamp(min=-1.0), hits.valid)

    @staticmethod
    def _check_negative(negative_prompt: str | list[str] | None, batch: int) -> list[str]:
        if negative_prompt is None:
            return [""] * batch
        if isinstance(negative_prompt, str):
            return [negative_prompt] * batch
        if not isinstance(negative_prompt, (list, tuple)) or not all(isinstance(n, str) for n in negative_prompt):
            raise InputError("negative_prompt must be a string or a list of strings")
        if len(negative_prompt) != batch:
            raise InputError(f"got {len(negative_prompt)} negative prompts for {batch} prompts")
        return list(negative_prompt)

    def _reranker(self) -> ClapEncoder:
        clap = self.reranker if self.reranker is not None else self.clap
        if not getattr(clap, "has_audio", False):
            raise InputError(
                "num_candidates > 1 needs a CLAP with an audio tower to rank candidates; this model's CLAP is "
                "text only (set pipe.reranker = load_clap(PATH), or --clap PATH on the command line)"
            )
        return clap

    def _prepare_latents(
        self,
        shape: tuple[int, int, int],
        total: int,
        generator: torch.Generator | list[torch.Generator] | None,
        seed: int | list[int] | None,
        latents: torch.Tensor | None,
    ) -> tuple[torch.Tensor, list[int] | None]:
        """Starting noise [total, *shape] and the seed of each latent (None if not seeded by tta)."""
        if sum(x is not None for x in (generator, seed, latents)) > 1:
            raise InputError("give at most one of generator, seed and latents")
        if latents is not None:
            if tuple(latents.shape) != (total, *shape):
                raise InputError(f"latents must have shape {(total, *shape)}, got {tuple(latents.shape)}")
            return latents, None
        if isinstance(generator, torch.Generator):
            return torch.randn((total, *shape), generator=generator, device=generator.device), None
        if generator is not None:
            if len(generator) != total:
                raise InputError(f"got {len(generator)} generators for {total} latents")
            return torch.cat([torch.randn((1, *shape), generator=g, device=g.device) for g in generator]), None
        if seed is None:
            seed = secrets.randbelow(2**31)
        if isinstance(seed, (list, tuple)):
            seeds = [int(s) for s in seed]
            if len(seeds) != total:
                raise InputError(f"got {len(seeds)} seeds for {total} latents")
        else:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
                raise InputError(f"seed must be an integer, got {seed!r}")
            seeds = [int(seed) + i for i in range(total)]
        if any(s < 0 or s > MAX_SEED for s in seeds):
            raise InputError(f"seeds must be in [0, {MAX_SEED}]")
        noise = [torch.randn((1, *shape), generator=torch.Generator("cpu").manual_seed(s)) for s in seeds]
        return torch.cat(noise), seeds

    def _rerank(
        self, clap: ClapEncoder, prompts: list[str], audio: torch.Tensor, per_prompt: int, n_cand: int
    ) -> tuple[torch.Tensor, list[int], np.ndarray]:
        """Keep the best of each ``n_cand`` consecutive candidates: audio [B * n_cand, N] -> [B, N]."""
        from tta.audio.io import resample

        wav = audio.float().cpu()
        if self.sample_rate != clap.sample_rate:
            wav = torch.from_numpy(resample(wav.numpy(), self.sample_rate, clap.sample_rate))
        text = clap.encode_text(prompts).float()  # [P, D]
        emb = clap.encode_audio(wav.to(clap.device)).float()  # [P * per_prompt * n_cand, D]
        text = text.repeat_interleave(per_prompt * n_cand, dim=0).to(emb.device)
        sims = (text * emb).sum(-1).view(-1, n_cand).cpu()  # [P * per_prompt, n_cand]
        best = sims.argmax(dim=1)
        keep = [g * n_cand + int(b) for g, b in enumerate(best)]
        return audio[keep], keep, sims.max(dim=1).values.numpy()


def _retrieved(sources: list[list[str]], found: dict[str, list[dict]], repeat: int) -> list[list[dict]]:
    """Per waveform (``repeat`` per prompt), the retrieved entries of each of its condition texts."""
    rows = [[{"text": text, "clips": found.get(text, [])} for text in texts] for texts in sources]
    return [row for row in rows for _ in range(repeat)]
