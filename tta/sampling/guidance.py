"""Classifier-free guidance: one function that wraps the UNet; the sampler loop knows nothing of it."""

from __future__ import annotations

from collections.abc import Callable

import torch

# (latents [B, C, H, W], timestep) -> predicted noise [B, C, H, W]
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def guided_denoiser(
    unet: torch.nn.Module,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    guidance_scale: float,
) -> Denoiser:
    """Wrap ``unet`` into ``eps(x, t)`` with classifier-free guidance.

    Args:
        unet: a ``UNet2DConditionModel`` conditioned through ``class_labels`` (AudioLDM's FiLM on CLAP).
        cond: conditioning embeddings [B, D] (the prompts).
        uncond: unconditional / negative-prompt embeddings [B, D]; unused when guidance is off.
        guidance_scale: ``uncond + scale * (cond - uncond)``; guidance is on when ``scale > 1`` (as in
            diffusers), else the UNet runs on ``cond`` alone.

    Returns:
        A function ``(x [B, C, H, W], t) -> eps [B, C, H, W]`` running one batched UNet call per step (in the
        UNet's dtype; ``eps`` comes back in ``x``'s dtype).
    """
    do_guidance = guidance_scale > 1.0 and uncond is not None
    labels = torch.cat([uncond, cond]) if do_guidance else cond

    dtype = next(unet.parameters()).dtype
    labels = labels.to(dtype)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x_in = torch.cat([x, x]) if do_guidance else x
        # the UNet may run in lower precision; the sampler keeps its state in the latents' dtype
        eps = unet(x_in.to(dtype), t, encoder_hidden_states=None, class_labels=labels).sample.to(x.dtype)
        if not do_guidance:
            return eps
        eps_uncond, eps_cond = eps.chunk(2)
        return eps_uncond + guidance_scale * (eps_cond - eps_uncond)

    return denoise
