"""The denoising loop over latents, shared by generation (and later editing / inpainting)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from tqdm.auto import tqdm

from tta.sampling.guidance import Denoiser

# callback(step index, timestep, latents [B, C, H, W]) after each step
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


def denoise(
    model: Denoiser,
    scheduler: SchedulerMixin,
    latents: torch.Tensor,
    timesteps: torch.Tensor | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
    desc: str = "denoising",
) -> torch.Tensor:
    """Run ``scheduler`` over ``timesteps`` (default: its own, after ``set_timesteps``) from ``latents``.

    Args:
        model: ``eps(x [B, C, H, W], t) -> [B, C, H, W]`` (e.g. from :func:`guided_denoiser`).
        scheduler: a diffusers scheduler on which ``set_timesteps`` was called.
        latents: the starting latents [B, C, H, W], already scaled by ``scheduler.init_noise_sigma``.
        progress: show a tqdm progress bar.
        callback: called after each step with ``(i, t, latents)``.

    Returns:
        Denoised latents [B, C, H, W].
    """
    timesteps = scheduler.timesteps if timesteps is None else timesteps
    for i, t in enumerate(tqdm(timesteps, desc=desc, disable=not progress, leave=False)):
        x_in = scheduler.scale_model_input(latents, t)
        eps = model(x_in, t)
        latents = scheduler.step(eps, t, latents).prev_sample
        if callback is not None:
            callback(i, t, latents)
    return latents
