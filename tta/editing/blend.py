"""Partial denoising for editing: the img2img timesteps for a strength, and the per-step blend that keeps part
of the input (RePaint-style, as diffusers' inpainting pipelines do with a 4-channel UNet)."""

from __future__ import annotations

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin


def img2img_timesteps(scheduler: SchedulerMixin, num_inference_steps: int, strength: float) -> torch.Tensor:
    """The last ``int(num_inference_steps * strength)`` of the scheduler's timesteps (diffusers' img2img rule:
    skip the first ``1 - strength`` of the steps); also tells the scheduler where it starts.

    ``set_timesteps(num_inference_steps)`` must have been called. Strength 0 gives no step at all.
    """
    run = min(int(num_inference_steps * strength), num_inference_steps)
    start = (num_inference_steps - run) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:]


class KeepBlend:
    """``after_step`` hook for :func:`tta.sampling.loop.denoise`: after step ``i``, the kept latent cells are
    replaced by the input's latents noised to the level of the next step (the clean latents after the last).

    Args:
        scheduler: the scheduler the loop runs (its ``add_noise`` gives the noise level of a timestep).
        timesteps: the timesteps the loop runs [S].
        x0: the input's latents [B, C, H, W] (VAE posterior mode times the scaling factor).
        noise: the noise the loop started from [B, C, H, W] (the same noise keeps the blend consistent).
        keep: 1 on kept latent cells, 0 on regenerated ones [H, W] (or broadcastable to x0).
    """

    def __init__(
        self,
        scheduler: SchedulerMixin,
        timesteps: torch.Tensor,
        x0: torch.Tensor,
        noise: torch.Tensor,
        keep: torch.Tensor,
    ):
        self.scheduler = scheduler
        self.timesteps = timesteps
        self.x0 = x0
        self.noise = noise
        self.keep = keep.to(device=x0.device, dtype=x0.dtype)

    def __call__(self, i: int, latents: torch.Tensor) -> torch.Tensor:
        if i + 1 < len(self.timesteps):
            known = self.scheduler.add_noise(self.x0, self.noise, self.timesteps[i + 1 : i + 2])
        else:
            known = self.x0
        return self.keep * known + (1.0 - self.keep) * latents
