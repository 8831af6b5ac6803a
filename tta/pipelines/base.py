"""The pipeline's components and identity: loading, saving, moving, and what a model is.

:class:`PipelineBase` holds the modules and nothing per request; the generation entry points live in
:mod:`tta.pipelines.text_to_audio` and :mod:`tta.pipelines.audio_to_audio`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from tta.errors import ModelLoadError
from tta.models.clap.base import ClapEncoder
from tta.pipelines import codec
from tta.pipelines.checks import DEFAULT_GUIDANCE, DEFAULT_STEPS


class PipelineBase:
    """The components of an AudioLDM-style model.

    ``folded_guidance``: True for a UNet whose one row per step already holds classifier-free guidance (a
    distilled student, :class:`tta.distill.pipeline.StudentPipeline`); composed guidance then averages the
    sounds' rows instead of guiding them around an unconditional row.

    Args:
        unet: diffusers ``UNet2DConditionModel`` conditioned on CLAP embeddings through ``class_labels`` (or a
            :class:`~tta.models.retrieval.RetrievalUNet`).
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
            prompt's text embedding towards the audio embeddings the UNet trained on (``use_prior=False`` in a
            call, or ``pipe.prior = None``, conditions on the raw text embeddings).
    """

    folded_guidance: bool = False

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
        self._model_hash: str | None = None
        self._clap_fingerprint: str | None = None
        self._fast = False
        self.engine_settings: dict[str, Any] = {"engine": "torch"}  # tta.engine.install sets it
        self.stream_settings: dict[str, Any] | None = None  # enable_streaming_decode sets it

    # ------------------------------------------------------------------ loading / saving

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        torch_dtype: torch.dtype | None = None,
        fast: bool = True,
        engine: str = "torch",
    ):
        """Load a tta model folder or a diffusers AudioLDM folder (no network).

        Args:
            path: the folder; None loads the default model (``checkpoints/``, or ``$TTA_MODEL``).
            device: where to put the modules.
            torch_dtype: dtype of the UNet, VAE and vocoder (default float32). ``torch.bfloat16`` runs ~1.8x
                faster on CPUs with AVX512-BF16 / AMX at ~1% waveform difference; CLAP and sampler stay float32.
            fast: apply CPU/GPU speed-ups that keep the maths (channels-last memory format).
            engine: ``"torch"`` (default: the pinned outputs), ``"onnx"``/``"openvino"`` (the UNet, VAE decoder
                and vocoder exported once per model hash and run by that runtime; float32 CPU), or ``"auto"``
                (the fastest installed runtime that matches torch, else torch). See :mod:`tta.engine`.

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
            reranker=parts.reranker,
        )
        pipe.to(device, torch_dtype)
        if fast:
            pipe.enable_fast_inference()
        if engine != "torch":
            pipe.enable_engine(engine)
        return pipe

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write a tta model folder (every component with its config, weights as safetensors), atomically."""
        from tta.engine.install import torch_module
        from tta.loading import save_components
        from tta.models.clap import backend_name

        # safetensors stores contiguous tensors: undo channels-last while saving
        self.unet.to(memory_format=torch.contiguous_format)
        self.vae.to(memory_format=torch.contiguous_format)
        try:
            return save_components(
                folder,
                torch_module(self, "unet"),
                torch_module(self, "vae"),
                torch_module(self, "vocoder"),
                self.clap,
                self.scheduler_config,
                backend_name(self.clap),
                self.sampling_defaults,
                self.prior,
            )
        finally:
            if self._fast:
                self.enable_fast_inference()

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        """Move every module to ``device``; cast the UNet, VAE and vocoder to ``dtype`` (CLAP stays float32).
        With a CPU engine installed (:meth:`enable_engine`) the pipeline stays float32 on CPU: moving or casting it
        is an error that says to go back to torch first."""
        engine = self.engine_settings.get("engine", "torch")
        moves = device is not None and torch.device(device).type != "cpu"
        if engine != "torch" and (moves or dtype not in (None, torch.float32)):
            from tta.errors import InputError

            raise InputError(
                f"the {engine} engine runs float32 on CPU: call enable_engine('torch') before to({device!r}, "
                f"{dtype}), and enable_engine after it"
            )
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

    def enable_fast_inference(self, unet_channels_last: bool | None = None):
        """Channels-last memory format for the 2-D convolution stacks (same maths, faster kernels).

        The VAE decoder gains ~1.2x on CPU. The UNet does not on CPU (measured on this project's machines at
        5-10 s of audio: 4% slower with 1 or 2 threads), so by default it is switched only on other devices.
        """
        if unet_channels_last is None:
            unet_channels_last = self.device.type != "cpu"
        if unet_channels_last:
            self.unet.to(memory_format=torch.channels_last)
        if not self.winograd_decode:  # NNPACK takes contiguous feature maps
            self.vae.to(memory_format=torch.channels_last)
        self._fast = True
        return self

    def enable_winograd_decode(self, on: bool = True):
        """Run the VAE decoder's wide 3x3 convolutions by Winograd's algorithm (NNPACK; :mod:`tta.engine.winograd`):
        the same maths with fewer float32 multiplications, 1.6x faster on AudioLDM-S's decoder on CPU, outputs
        within ~1e-5 of oneDNN's (not bit for bit, so it is opt-in; the settings record it). With an engine
        installed, the decoder goes back to torch, which is then the faster. ``on=False`` undoes it (and the decoder
        stays in torch until :meth:`enable_engine` runs again)."""
        from tta.engine.install import torch_module
        from tta.engine.winograd import disable_winograd, enable_winograd, nnpack_available
        from tta.errors import InputError

        vae = torch_module(self, "vae")
        decoder = getattr(vae, "decoder", vae)
        if not on:
            disable_winograd(decoder)
            if self._fast:
                self.enable_fast_inference()
            return self
        if not nnpack_available():
            raise InputError(
                "Winograd decode needs NNPACK, which this torch build or CPU lacks (x86-64 AVX2, ARM NEON)"
            )
        vae.to(memory_format=torch.contiguous_format)
        if not enable_winograd(decoder):
            import warnings

            warnings.warn(
                "Winograd decode: no layer of this VAE decoder is wide enough to gain; it is off", stacklevel=2
            )
        if self.vae is not vae:
            self.vae = vae
            self.engine_settings.setdefault("components", {})["vae_decoder"] = "torch (winograd decode)"
        return self

    @property
    def winograd_decode(self) -> bool:
        """Whether :meth:`enable_winograd_decode` is on."""
        from tta.engine.install import torch_module
        from tta.engine.winograd import winograd_layers

        vae = torch_module(self, "vae")
        return winograd_layers(getattr(vae, "decoder", vae)) > 0

    def enable_engine(self, engine: str = "auto", threads: int | None = None, options: dict | None = None):
        """Run the UNet, VAE decoder and vocoder in a CPU engine (:func:`tta.engine.install`; ``"torch"`` undoes
        it). What ran where is ``self.engine_settings``, recorded in every output's settings."""
        from tta.engine import install

        install(self, engine, threads, options)
        return self

    def enable_streaming_decode(
        self, min_seconds: float | None = 20.0, chunk_frames: int = 256, overlap_frames: int = 32
    ):
        """Decode audio of ``min_seconds`` or longer in overlapping chunks of ``chunk_frames`` mel frames
        (:func:`tta.engine.stream.decode_streaming`): the decoder's peak memory then follows the chunk, not the
        duration. Shorter audio decodes whole, bit for bit as before; ``min_seconds=None`` switches it off. The
        settings of every output record it (``stream_decode``)."""
        from tta.errors import InputError

        if min_seconds is None:
            self.stream_settings = None
            return self
        if not (min_seconds >= 0 and chunk_frames >= 1 and 0 <= overlap_frames < chunk_frames):
            raise InputError(
                f"streaming decode needs min_seconds >= 0 and 0 <= overlap_frames < chunk_frames, got "
                f"{min_seconds}, {overlap_frames}, {chunk_frames}"
            )
        self.stream_settings = {
            "min_seconds": float(min_seconds), "chunk_frames": int(chunk_frames), "overlap_frames": int(overlap_frames)
        }  # fmt: skip
        return self

    # ------------------------------------------------------------------ identity

    def enable_model_cpu_offload(self, device: str | torch.device = "cuda"):
        """Keep each module in CPU memory until it runs on ``device`` (:mod:`tta.pipelines.offload`)."""
        from tta.pipelines.offload import enable_model_cpu_offload

        return enable_model_cpu_offload(self, device)

    @property
    def device(self) -> torch.device:
        from tta.pipelines.offload import execution_device

        return execution_device(self) or next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The UNet's dtype (the VAE and vocoder share it)."""
        return next(self.unet.parameters()).dtype

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
        return codec.sample_rate(self.vocoder)

    @property
    def hop_length(self) -> int:
        return codec.hop_length(self.vocoder)

    @property
    def latent_grid(self) -> tuple[int, int]:
        """(channels, frequency bins) of this model's latents (what a retrieval index must match)."""
        from tta.models.vae import latent_grid

        return latent_grid(self.vae, self.vocoder.config.model_in_dim)

    def load_lora(self, path, scale: float = 1.0) -> str:
        """Stack the LoRA adapter at ``path`` on the UNet at ``scale`` (:func:`tta.lora.load_lora`)."""
        from tta.lora import load_lora

        return load_lora(self, path, scale)

    def unload_lora(self) -> None:
        """Remove every loaded LoRA adapter (:func:`tta.lora.unload_lora`)."""
        from tta.lora import unload_lora

        unload_lora(self)

    def _lora_settings(self) -> dict[str, Any]:
        """``{"lora": [{"path", "scale", "hash"}, ...]}`` when adapters are loaded, else nothing."""
        from tta.lora.apply import loaded_adapters

        loras = loaded_adapters(self)
        return {"lora": loras} if loras else {}

    @property
    def model_hash(self) -> str | None:
        """Content hash of the model folder's configs and weights (computed once), or None if not from a folder."""
        if self._model_hash is None and self.name_or_path and Path(self.name_or_path).is_dir():
            from tta.loading import model_hash

            self._model_hash = model_hash(self.name_or_path)
        return self._model_hash

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

    def model_settings(self) -> dict[str, Any]:
        """The model's part of an output's settings: where it came from, its hash, dtype and device, versions."""
        from tta import __version__

        return {
            "model": self.name_or_path,
            "model_hash": self.model_hash,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "engine": self.engine_settings.get("engine", "torch"),
            "sample_rate": self.sample_rate,
            "tta_version": __version__,
            "torch_version": torch.__version__,
            **self._lora_settings(),
            **({"stream_decode": dict(self.stream_settings)} if self.stream_settings else {}),
            **({"winograd_decode": True} if self.winograd_decode else {}),
        }

    def layout(self, audio_length_in_s: float):
        """The :class:`~tta.sampling.LatentLayout` (latent shape, samples kept) for a duration in seconds."""
        from tta.models.unet import unet_downsample_factor
        from tta.models.vae import vae_downsample_factor
        from tta.sampling import latent_layout

        return latent_layout(
            audio_length_in_s,
            sample_rate=self.sample_rate,
            hop_length=self.hop_length,
            latent_channels=int(self.unet.config.in_channels),
            n_mels=int(self.vocoder.config.model_in_dim),
            vae_factor=vae_downsample_factor(self.vae),
            unet_factor=unet_downsample_factor(self.unet),
        )

    # ------------------------------------------------------------------ codec (tta.pipelines.codec)

    def decode(self, latents: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """Latents [B, C, H, W] -> waveforms [B, T * hop], float32 (VAE decoder, then the vocoder); in chunks when
        :meth:`enable_streaming_decode` asks for it and the audio is long enough."""
        stream = self.stream_settings
        if stream is not None:
            from tta.models.vae import vae_downsample_factor

            frames = latents.shape[2] * vae_downsample_factor(self.vae) if num_frames is None else num_frames
            if frames * self.hop_length >= stream["min_seconds"] * self.sample_rate:
                from tta.engine.stream import decode_streaming

                return decode_streaming(
                    self.vae, self.vocoder, latents, num_frames, stream["chunk_frames"], stream["overlap_frames"]
                )
        return codec.decode(self.vae, self.vocoder, latents, num_frames)

    def decode_mel(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [B, C, H, W] -> log-mel [B, 1, H * vae_factor, W * vae_factor] (the VAE decoder)."""
        return codec.decode_mel(self.vae, latents)

    def vocode(self, mel: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """Log-mel [B, 1, T, n_mels] -> waveforms [B, T' * hop] (float32) of its first ``num_frames`` frames."""
        return codec.vocode(self.vocoder, mel, num_frames)

    def encode_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, 1, T, n_mels] -> latents [B, C, T / f, n_mels / f] (the VAE posterior's mode times the
        scaling factor; deterministic)."""
        return codec.encode_mel(self.vae, mel)

    def mel_frontend(self):
        """The log-mel front-end (:class:`tta.audio.mel.MelSpectrogram`) matching the vocoder."""
        return codec.mel_frontend(self.vocoder)
