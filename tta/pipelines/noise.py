"""Starting noise: one generator per latent when seeded, so any waveform of a batch regenerates alone."""

from __future__ import annotations

from typing import Any

import torch

from tta.errors import InputError
from tta.pipelines.checks import check_seeds


def prepare_latents(
    shape: tuple[int, int, int],
    total: int,
    generator: torch.Generator | list[torch.Generator] | None = None,
    seed: Any = None,
    latents: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[int] | None]:
    """Starting noise [total, *shape] (float32, on the generator's device or the CPU) and the seed of each latent
    (None if the caller gave ``generator`` or ``latents``).

    ``seed``: an int (latent i gets ``seed + i``), a list of ``total`` seeds, or None (a random base seed).
    """
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
    seeds = check_seeds(seed, total)
    noise = [torch.randn((1, *shape), generator=torch.Generator("cpu").manual_seed(s)) for s in seeds]
    return torch.cat(noise), seeds
