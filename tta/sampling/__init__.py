"""Sampling: samplers by name, classifier-free guidance, latent shapes, and the denoising loop."""

from tta.sampling.guidance import guided_denoiser
from tta.sampling.loop import denoise
from tta.sampling.schedulers import DEFAULT_SAMPLER, SAMPLERS, make_scheduler, sampler_name
from tta.sampling.shapes import DEFAULT_DURATION_S, MAX_DURATION_S, LatentLayout, check_duration, latent_layout

__all__ = [
    "DEFAULT_DURATION_S",
    "DEFAULT_SAMPLER",
    "MAX_DURATION_S",
    "SAMPLERS",
    "LatentLayout",
    "check_duration",
    "denoise",
    "guided_denoiser",
    "latent_layout",
    "make_scheduler",
    "sampler_name",
]
