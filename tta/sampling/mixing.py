"""Prompts that name several sounds, rendered as a mix: each sound sampled on its own latent, then summed.

The other way, composed guidance (:mod:`tta.sampling.guidance`), steers one latent towards every sound at once;
our small UNet then mostly renders one of them, as it met two sounds together only in its training mixtures.
Sampling each sound alone and adding the waveforms (the recipe of WavJourney, Liu et al. 2023, which mixes
separately generated clips) renders both by construction. The first sound named is the foreground: it keeps its
own level, and each later one is scaled to the first's RMS level times ``10 ** (gain_db / 20)``.
"""

from __future__ import annotations

import torch

DEFAULT_MIX_GAIN_DB = -9.0  # later sounds 9 dB under the first (chosen on the tuning prompts; model card)
COMPOSE_MODES = ("mix", "guidance")
_SILENT_RMS = 1e-6


def expand_sources(
    sources: list[torch.Tensor], uncond: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """One row per sound: conditions [M, D] (latent b's sounds in order), the matching unconditional rows
    [M, D] (None without guidance) and ``owner`` [M], the latent (waveform) each row belongs to.

    Args:
        sources: one [J_b, D] tensor of conditions per latent, J_b >= 1.
        uncond: one unconditional (negative prompt) row per latent [B, D], or None.
    """
    if any(s.ndim != 2 or s.shape[0] < 1 for s in sources):
        raise ValueError("expected one non-empty [J, D] tensor of conditions per latent")
    if uncond is not None and uncond.shape[0] != len(sources):
        raise ValueError(f"got {uncond.shape[0]} unconditional rows for {len(sources)} latents")
    counts = torch.tensor([s.shape[0] for s in sources])
    owner = torch.repeat_interleave(torch.arange(len(sources)), counts)
    cond = torch.cat(sources)
    return cond, (uncond[owner.to(uncond.device)] if uncond is not None else None), owner


def part_index(owner: torch.Tensor) -> torch.Tensor:
    """[M]: each row's place among its latent's sounds (0 for the first named); ``owner`` is grouped (sorted)."""
    return torch.arange(len(owner)) - torch.searchsorted(owner, owner)


def sound_noise(
    latents: torch.Tensor,
    owner: torch.Tensor,
    generator: torch.Generator | list[torch.Generator] | None,
    seeds: list[int] | None,
) -> torch.Tensor:
    """Starting noise of every sound [M, C, H, W], from the latents' [B, C, H, W]: a latent's first sound keeps
    its noise (``latents[b]``), so a prompt that names one sound gets the same noise as without mixing; the k-th
    sound (k >= 1) takes the k-th draw after the seed's first (``seeds[b]``), else the next draw of the latent's
    generator, else a draw seeded with ``k * 1_000_003 + b`` (explicit latents)."""
    shape = latents.shape[1:]
    rows = []
    for b, k in zip(owner.tolist(), part_index(owner).tolist()):
        if k == 0:
            rows.append(latents[b : b + 1])
            continue
        if seeds is not None:
            g = torch.Generator("cpu").manual_seed(seeds[b])
            rows.append([torch.randn((1, *shape), generator=g) for _ in range(k + 1)][-1])
        elif isinstance(generator, torch.Generator):
            rows.append(torch.randn((1, *shape), generator=generator, device=generator.device))
        elif generator is not None:
            rows.append(torch.randn((1, *shape), generator=generator[b], device=generator[b].device))
        else:
            g = torch.Generator("cpu").manual_seed(k * 1_000_003 + b)
            rows.append(torch.randn((1, *shape), generator=g))
    return torch.cat([r.to(latents.device, latents.dtype) for r in rows])


def mix_sources(audio: torch.Tensor, owner: torch.Tensor, gain_db: float = DEFAULT_MIX_GAIN_DB) -> torch.Tensor:
    """Sum each latent's sounds into one waveform: [M, N] -> [B, N], B = ``owner.max() + 1``.

    The first sound of each group keeps its level; every later one is scaled to the first's RMS times
    ``10 ** (gain_db / 20)`` (left as it is when silent; when the first is silent, the loudest of the group sets
    the level). A group of one sound comes back unchanged, bit for bit.
    """
    if audio.shape[0] != owner.shape[0]:
        raise ValueError(f"got {audio.shape[0]} waveforms for {owner.shape[0]} owners")
    owner = owner.cpu()
    batch = int(owner.max()) + 1 if owner.numel() else 0
    rms = audio.detach().float().pow(2).flatten(1).mean(dim=1).sqrt().cpu().tolist()
    gain = 10.0 ** (gain_db / 20.0)
    out = []
    for b in range(batch):
        rows = (owner == b).nonzero().flatten().tolist()
        if not rows:
            raise ValueError(f"latent {b} has no sound")
        level = rms[rows[0]] if rms[rows[0]] > _SILENT_RMS else max(rms[r] for r in rows)
        mixed = audio[rows[0]]
        for r in rows[1:]:
            mixed = mixed + audio[r] * (level * gain / rms[r] if rms[r] > _SILENT_RMS else 1.0)
        out.append(mixed)
    return torch.stack(out) if out else audio[:0]
