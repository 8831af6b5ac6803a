"""The denoising loop over latents, shared by generation and editing (style transfer, inpainting)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from tqdm.auto import tqdm

from tta.sampling.guidance import Denoiser

# callback(step index, timestep, latents [B, C, H, W]) after each step
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]
# after_step(step index, latents [B, C, H, W]) -> latents: edits the sampler's state after each step
StepHook = Callable[[int, torch.Tensor], torch.Tensor]


def denoise(
    model: Denoiser,
    scheduler: SchedulerMixin,
    latents: torch.Tensor,
    timesteps: torch.Tensor | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
    desc: str = "denoising",
    after_step: StepHook | None = None,
) -> torch.Tensor:
    """Run ``scheduler`` over ``timesteps`` (default: its own, after ``set_timesteps``) from ``latents``.

    Args:
        model: ``eps(x [B, C, H, W], t) -> [B, C, H, W]`` (e.g. from :func:`guided_denoiser`).
        scheduler: a diffusers scheduler on which ``set_timesteps`` was called.
        latents: the starting latents [B, C, H, W], already scaled by ``scheduler.init_noise_sigma`` (or noised
            to the first timestep with ``scheduler.add_noise`` when editing).
        timesteps: the timesteps to run, e.g. the last ones of ``scheduler.timesteps`` for a partial run (the
            caller then sets ``scheduler.set_begin_index``).
        progress: show a tqdm progress bar.
        callback: called after each step with ``(i, t, latents)``.
        after_step: ``after_step(i, latents) -> latents`` runs after step ``i`` and before ``callback``; editing
            uses it to put back the kept regions (:class:`tta.editing.KeepBlend`).

    Returns:
        Denoised latents [B, C, H, W].
    """
    timesteps = scheduler.timesteps if timesteps is None else timesteps
    for i, t in enumerate(tqdm(timesteps, desc=desc, disable=not progress, leave=False)):
        x_in = scheduler.scale_model_input(latents, t)
        eps = model(x_in, t)
        latents = scheduler.step(eps, t, latents).prev_sample
        if after_step is not None:
            latents = after_step(i, latents)
        if callback is not None:
            callback(i, t, latents)
    return latents
