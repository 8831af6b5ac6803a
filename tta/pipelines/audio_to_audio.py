"""Audio to audio: style transfer, inpainting and super-resolution (``TTAPipeline.edit`` and its two shortcuts).

The input is encoded to latents, noised to ``strength`` and denoised under the prompt by the same sampler loop as
text-to-audio (:func:`tta.pipelines.steps.sample`). With a region, only that part is regenerated: after each
step the kept latent cells are put back at the current noise level, and the decoded log-mel takes the input's
VAE round trip on the kept mel cells (fading into the new part over ``feather_s`` at time borders).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch

from tta.audio.limiter import DEFAULT_PEAK_LIMIT
from tta.editing.regions import EditRegion
from tta.errors import InputError
from tta.pipelines import checks
from tta.pipelines.conditioning import check_compose, retrieved_rows
from tta.pipelines.noise import prepare_latents
from tta.pipelines.outputs import EditOutput
from tta.pipelines.steps import check_request, finish_audio, sample
from tta.sampling.loop import StepCallback

SUPER_RESOLUTION_PROMPT = "high quality, clear, full bandwidth recording"


class AudioToAudioMixin:
    """``pipe.edit``, ``pipe.inpaint``, ``pipe.super_resolve`` (mixed into :class:`~tta.TTAPipeline`).

    ``edit`` arguments:
        audio: a file path, or a waveform [N] / [C, N] with its ``sample_rate``; resampled to the model's rate,
            mixed to mono, peak-normalised to 0.5 (AudioLDM's input pre-processing); 0.1 to 60 s.
        prompt: the text the result should match.
        strength: in [0, 1], how much of the sampling runs: 0 returns the input's VAE + vocoder round trip, 1
            starts from pure noise (the usual choice for inpainting and super-resolution).
        region: what to regenerate (:class:`tta.editing.EditRegion`); None: everything (style transfer).
        feather_s: length of the fade at the borders of regenerated time ranges, seconds.
        num_waveforms: variations generated (seeds ``seed``, ``seed + 1``...).
        Other arguments as in :meth:`TTAPipeline.__call__`.

    ``edit`` returns an :class:`EditOutput`: ``.audios`` [num_waveforms, N] with N the input's samples, ``.mels``
    the final log-mels [num_waveforms, T, n_mels] (T = ceil(N / hop)), ``.seeds``, ``.region`` as checked,
    ``.settings`` (what ran).
    """

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
        retrieval: Any = None,
        top_k: int | None = None,
        extend_prior: bool = True,
        use_prior: bool = True,
        loudness: float | None = None,
    ) -> EditOutput:
        """Edit existing audio under a prompt: style transfer, inpainting or super-resolution (see the class)."""
        from tta.audio.io import normalize_waveform
        from tta.editing import img2img_timesteps, load_edit_audio

        # 1. Check inputs; read the audio
        req = check_request(
            self, prompt, negative_prompt, num_inference_steps, guidance_scale, sampler, output_type,
            peak_limit, loudness, retrieval, top_k, extend_prior, use_prior,
        )  # fmt: skip
        if len(req.prompts) != 1:
            raise InputError("edit takes one prompt")
        total = checks.check_count(num_waveforms, "num_waveforms")
        strength = checks.check_unit(strength, "strength")
        feather_s = checks.check_feather(feather_s)
        req.compose = check_compose(req.conditioning, compose, req.guidance_scale, "guidance", self.folded_guidance)
        wav = normalize_waveform(load_edit_audio(audio, sample_rate, self.sample_rate))
        region = region.check(wav.size / self.sample_rate, self.sample_rate) if region is not None else None
        device = self.device

        # 2. Input -> log-mel [1, 1, T, n_mels] (padded with silence to the UNet's frames) -> latents [B, C, H, W]
        layout, frontend, x0 = self._input_latents(wav, total)

        # 3. Encode the prompt (and negative prompt) with CLAP (and the retrieval index, if given)
        found: dict[str, list[dict]] = {}
        cond, uncond, sources = req.encode(self, total, found)

        # 4. Scheduler: the last `strength` of the steps
        scheduler = req.scheduler
        scheduler.set_timesteps(req.steps, device=device)
        timesteps = img2img_timesteps(scheduler, req.steps, strength)

        # 5. Start: the input's latents noised to the first timestep (pure noise at strength 1, as diffusers)
        noise, seeds = prepare_latents(layout.latent_shape, total, generator, seed, None)
        noise = noise.to(device=device, dtype=torch.float32)  # the sampler runs in float32
        latents = noised_start(scheduler, x0, noise, timesteps, strength)

        # 6. Denoising loop with guidance; the kept part of the input put back after each step
        blend, weights = self._region_blend(region, layout, frontend, scheduler, timesteps, x0, noise, feather_s)
        latents = sample(self.unet, scheduler, latents, cond, uncond, req.guidance_scale, timesteps, progress, callback, blend)  # fmt: skip

        # 7. Decode to log-mel; kept cells from the input's round trip; vocode, trim to the input's length
        audio, out_mel = self._decode_edit(latents, x0, weights, wav.size)
        return EditOutput(
            sample_rate=self.sample_rate,
            seeds=seeds,
            sources=[list(sources[0]) for _ in range(total)],
            retrieved=retrieved_rows(sources, found, total),
            mels=out_mel.numpy() if output_type == "np" else out_mel,
            region=region,
            settings={**req.settings(self), **edit_settings(strength, region, feather_s)},
            prompts=req.prompts * total,
            **finish_audio(audio, req, self.sample_rate),
        )

    def _decode_edit(self, latents: torch.Tensor, x0: torch.Tensor, weights: torch.Tensor | None, num_samples: int):
        """Latents [B, C, H, W] -> waveforms [B, num_samples] and log-mels [B, T, n_mels] (float32, CPU), the cells
        ``weights`` keeps (1) taken from the input's VAE round trip ``x0``."""
        out_mel = self.decode_mel(latents)  # [B, 1, T, n_mels]
        if weights is not None:
            weights = weights.to(device=out_mel.device, dtype=out_mel.dtype)
            out_mel = weights * self.decode_mel(x0[:1]) + (1.0 - weights) * out_mel
        num_frames = math.ceil(num_samples / self.hop_length)
        audio = self.vocode(out_mel, num_frames)[:, :num_samples]
        return audio, out_mel[:, 0, :num_frames].float().cpu()

    def _input_latents(self, wav: np.ndarray, total: int):
        """The input [N] as the UNet sees it: its latent layout, the mel front-end, and its latents [total, C, H, W]
        (the log-mel padded with silence to the UNet's frames, then the VAE posterior's mode)."""
        device = self.device
        layout = self.layout(wav.size / self.sample_rate)
        frontend = self.mel_frontend().to(device)
        mel = frontend(torch.from_numpy(wav).to(device))
        mel = torch.nn.functional.pad(mel, (0, 0, 0, layout.mel_frames - mel.shape[0]), value=math.log(1e-5))
        return layout, frontend, self.encode_mel(mel[None, None]).expand(total, -1, -1, -1)

    def _region_blend(self, region, layout, frontend, scheduler, timesteps, x0, noise, feather_s):
        """For a region: the after-step hook that puts the kept latent cells back, and the mel weights [1, 1, T,
        n_mels] of the input's round trip (1 where kept); (None, None) without one."""
        from tta.editing import KeepBlend
        from tta.editing.regions import keep_weights, latent_keep, mel_bin_tops
        from tta.models.vae import vae_downsample_factor

        if region is None:
            return None, None
        bin_tops = mel_bin_tops(frontend.mel_basis, self.sample_rate, frontend.n_fft)
        regen_t, regen_f = region.mel_masks(layout.mel_frames, self.sample_rate / self.hop_length, bin_tops)
        keep = latent_keep(regen_t, regen_f, vae_downsample_factor(self.vae))
        blend = KeepBlend(scheduler, timesteps, x0, noise, keep)
        weights = keep_weights(regen_t, regen_f, round(feather_s * self.sample_rate / self.hop_length), 1)
        return blend, weights

    def inpaint(
        self, audio, prompt: str, ranges: list[tuple[float, float]], strength: float = 1.0, **kwargs: Any
    ) -> EditOutput:
        """Regenerate the time ``ranges`` (seconds) under ``prompt``, keep the rest (see :meth:`edit`)."""
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
        from tta.editing import detect_cutoff_hz, load_edit_audio

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


def noised_start(scheduler, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, strength: float):
    """The first latents of an edit: pure noise at strength 1 (as diffusers), else the input's latents ``x0``
    noised to the first of ``timesteps`` (``x0`` itself when no step runs)."""
    if strength >= 1.0:
        return noise * scheduler.init_noise_sigma
    if len(timesteps):
        return scheduler.add_noise(x0, noise, timesteps[:1])
    return x0


def edit_settings(strength: float, region: EditRegion | None, feather_s: float) -> dict[str, Any]:
    """An edit's own settings: its mode, strength and region (as ``tta edit``'s flags name them)."""
    ranges = [list(r) for r in region.ranges] if region is not None and region.ranges else None
    cutoff = region.above_hz if region is not None else None
    mode = "inpaint" if ranges else "superres" if cutoff is not None else "style"
    return {
        "mode": mode,
        "strength": strength,
        "ranges": ranges,
        "cutoff_hz": cutoff,
        "feather": feather_s if ranges else None,
    }
