"""Classifier-free guidance: one function that wraps the UNet; the sampler loop knows nothing of it.

With composed prompts (:mod:`tta.sampling.composition`) a latent may have several conditions (one per sound); its
guided prediction is then ``eps_u + g * mean_j (eps_j - eps_u)`` (composable diffusion, Liu et al. 2022), still
from one batched UNet call per step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# (latents [B, C, H, W], timestep) -> predicted noise [B, C, H, W]
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def guided_denoiser(
    unet: torch.nn.Module,
    cond: torch.Tensor | list[torch.Tensor],
    uncond: torch.Tensor | None,
    guidance_scale: float,
) -> Denoiser:
    """Wrap ``unet`` into ``eps(x, t)`` with classifier-free guidance.

    Args:
        unet: a ``UNet2DConditionModel`` conditioned through ``class_labels`` (AudioLDM's FiLM on CLAP).
        cond: conditioning embeddings [B, D] (the prompts), or, for composed prompts, one tensor [J_b, D] per
            latent (its sounds; with guidance on). A latent with one condition is guided exactly as with [B, D].
        uncond: unconditional / negative-prompt embeddings [B, D]; unused when guidance is off.
        guidance_scale: ``uncond + scale * (cond - uncond)``; guidance is on when ``scale > 1`` (as in
            diffusers), else the UNet runs on ``cond`` alone.

    Returns:
        A function ``(x [B, C, H, W], t) -> eps [B, C, H, W]`` running one batched UNet call per step (in the
        UNet's dtype; ``eps`` comes back in ``x``'s dtype).
    """
    do_guidance = guidance_scale > 1.0 and uncond is not None
    if isinstance(cond, (list, tuple)):
        return _composed_denoiser(unet, list(cond), uncond if do_guidance else None, guidance_scale)
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


def _composed_denoiser(
    unet: torch.nn.Module, sources: list[torch.Tensor], uncond: torch.Tensor | None, guidance_scale: float
) -> Denoiser:
    """``eps_u + g * mean_j (eps_j - eps_u)`` per latent; ``sources[b]`` [J_b, D] are latent b's conditions.

    Without ``uncond`` it is ``mean_j eps_j``: the same formula at ``g = 1``, and for a student whose rows hold
    folded guidance, ``mean_j (eps_u + g (eps_j - eps_u))``, i.e. composed guidance at the folded scale."""
    if not sources or any(s.ndim != 2 or s.shape[0] < 1 for s in sources):
        raise ValueError("expected one non-empty [J, D] tensor per latent")
    if uncond is not None and len(sources) != uncond.shape[0]:
        raise ValueError(f"expected one [J, D] tensor per latent ({uncond.shape[0]}), got {len(sources)}")
    dtype = next(unet.parameters()).dtype
    device = sources[0].device  # the latents' device too
    labels = torch.cat(([uncond] if uncond is not None else []) + sources).to(dtype)
    counts = torch.tensor([s.shape[0] for s in sources], device=device)
    owner = torch.repeat_interleave(torch.arange(len(sources), device=device), counts)  # cond row -> latent
    batch = len(sources) if uncond is not None else 0

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x_in = torch.cat([x, x[owner]]) if uncond is not None else x[owner]
        eps = unet(x_in.to(dtype), t, encoder_hidden_states=None, class_labels=labels).sample.to(x.dtype)
        eps_uncond, eps_cond = (eps[:batch], eps[batch:]) if uncond is not None else (torch.zeros_like(x), eps)
        delta = torch.zeros_like(eps_uncond).index_add_(0, owner, eps_cond - eps_uncond[owner])
        delta = delta / counts.to(eps.dtype).view(-1, *([1] * (eps.ndim - 1)))
        return eps_uncond + (guidance_scale if uncond is not None else 1.0) * delta

    return denoise
