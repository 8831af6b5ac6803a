"""The steps text-to-audio and audio-to-audio share: checking a request, the guided sampler loop, and the
post-processing of the waveforms (peak limit, loudness) with the settings that record them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tta.pipelines import checks
from tta.pipelines.conditioning import Conditioning, encode_prompts, resolve_conditioning
from tta.sampling import denoise, guided_denoiser, make_scheduler, sampler_name
from tta.sampling.loop import StepCallback


@dataclass
class Request:
    """One call's checked inputs (defaults filled in) and the conditioning resolved for it."""

    prompts: list[str]
    negatives: list[str]
    steps: int
    guidance_scale: float
    sampler: str
    scheduler: Any
    output_type: str
    peak_limit: float | None
    loudness: float | None
    conditioning: Conditioning
    compose: bool = False

    def encode(self, pipe, repeat: int, found: dict[str, list[dict]]):
        """Step 3 of both pipelines: the condition rows (see :func:`tta.pipelines.conditioning.encode_prompts`)."""
        return encode_prompts(
            self.conditioning,
            self.prompts,
            self.negatives,
            repeat,
            self.guidance_scale,
            pipe.device,
            self.compose,
            found,
        )

    def settings(self, pipe) -> dict[str, Any]:
        """The settings both pipelines record."""
        negative = self.negatives[0] if len(set(self.negatives)) == 1 else list(self.negatives)
        return {
            "negative_prompt": negative or None,
            "sampler": self.sampler,
            "steps": self.steps,
            "guidance": self.guidance_scale,
            "compose": self.compose,
            **self.conditioning.settings(),
            "peak_limit": self.peak_limit,
            "loudness": self.loudness,
            **pipe.model_settings(),
        }


def check_request(
    pipe,
    prompt: Any,
    negative_prompt: Any,
    num_inference_steps: Any,
    guidance_scale: Any,
    sampler: str | None,
    output_type: str,
    peak_limit: Any,
    loudness: Any,
    retrieval: Any,
    top_k: Any,
    extend_prior: bool,
    use_prior: bool,
) -> Request:
    """Step 1 of both pipelines: every argument checked (None: the model's default), a fresh scheduler for
    ``sampler``, and the call's :class:`Conditioning`."""
    prompts = checks.check_prompts(prompt)
    negatives = checks.check_negative(negative_prompt, len(prompts))
    steps = pipe.default_steps if num_inference_steps is None else num_inference_steps
    guidance = checks.check_guidance(pipe.default_guidance if guidance_scale is None else guidance_scale)
    checks.check_output_type(output_type)
    name = sampler_name(sampler if sampler is not None else getattr(pipe, "default_sampler", None))
    scheduler = make_scheduler(name, pipe.scheduler_config)
    steps = checks.check_steps(steps, checks.scheduler_step_limit(scheduler.config))
    return Request(
        prompts=prompts,
        negatives=negatives,
        steps=steps,
        guidance_scale=guidance,
        sampler=name,
        scheduler=scheduler,
        output_type=output_type,
        peak_limit=checks.check_peak_limit(peak_limit),
        loudness=checks.check_loudness(loudness),
        conditioning=resolve_conditioning(pipe, retrieval, top_k, extend_prior, use_prior),
    )


def sample(
    unet: torch.nn.Module,
    scheduler,
    latents: torch.Tensor,
    cond: torch.Tensor | list[torch.Tensor],
    uncond: torch.Tensor | None,
    guidance_scale: float,
    timesteps: torch.Tensor | None = None,
    progress: bool = True,
    callback: StepCallback | None = None,
    after_step=None,
) -> torch.Tensor:
    """The one sampler loop of tta: classifier-free guidance around the UNet (:mod:`tta.sampling.guidance`),
    stepped by ``scheduler`` over ``timesteps`` (default: all of them), ``after_step`` run after each step."""
    model = guided_denoiser(unet, cond, uncond, guidance_scale)
    return denoise(model, scheduler, latents, timesteps, progress=progress, callback=callback, after_step=after_step)


def finish_audio(audio: torch.Tensor, request: Request, sample_rate: int) -> dict[str, Any]:
    """Post-process waveforms [B, N]: loudness-normalise them (with ``loudness``), then keep their peaks under
    ``peak_limit``. Returns the output fields: ``audios`` (numpy or torch), ``peak_gains`` and the loudness
    measured and gain applied (None without ``loudness``)."""
    from tta.audio.limiter import limit_peaks

    audio = audio.float().cpu()
    fields: dict[str, Any] = {"loudness_measured": None, "loudness_gain_db": None}
    if request.loudness is not None:
        from tta.audio.loudness import normalize_loudness

        limit = request.peak_limit if request.peak_limit is not None else 1.0
        audio, measured, gain_db = normalize_loudness(audio, sample_rate, request.loudness, limit)
        fields.update(loudness_measured=np.asarray(measured), loudness_gain_db=np.asarray(gain_db))
    audio, gains = limit_peaks(audio, request.peak_limit)
    fields.update(audios=audio.numpy() if request.output_type == "np" else audio, peak_gains=gains.numpy())
    return fields
