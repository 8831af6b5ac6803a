"""CLAP re-ranking: generate several candidates per kept waveform, keep the one closest to its prompt."""

from __future__ import annotations

import numpy as np
import torch

from tta.errors import InputError
from tta.models.clap.base import ClapEncoder


def reranking_clap(reranker: ClapEncoder | None, clap: ClapEncoder) -> ClapEncoder:
    """The CLAP that ranks candidates: ``reranker`` if given, else the model's own ``clap``; it needs an audio
    tower."""
    chosen = reranker if reranker is not None else clap
    if not getattr(chosen, "has_audio", False):
        raise InputError(
            "num_candidates > 1 needs a CLAP with an audio tower to rank candidates; this model's CLAP is "
            "text only (set pipe.reranker = load_clap(PATH), or --clap PATH on the command line)"
        )
    return chosen


def rerank(
    clap: ClapEncoder, prompts: list[str], audio: torch.Tensor, sample_rate: int, per_prompt: int, n_cand: int
) -> tuple[torch.Tensor, list[int], np.ndarray]:
    """Keep the best of each ``n_cand`` consecutive candidates: audio [B * n_cand, N] -> [B, N].

    Returns the kept waveforms, their rows in ``audio`` and their CLAP scores (text-audio cosine) [B].
    """
    from tta.audio.io import resample

    wav = audio.float().cpu()
    if sample_rate != clap.sample_rate:
        wav = torch.from_numpy(resample(wav.numpy(), sample_rate, clap.sample_rate))
    text = clap.encode_text(prompts).float()  # [P, D]
    emb = clap.encode_audio(wav.to(clap.device)).float()  # [P * per_prompt * n_cand, D]
    text = text.repeat_interleave(per_prompt * n_cand, dim=0).to(emb.device)
    sims = (text * emb).sum(-1).view(-1, n_cand).cpu()  # [P * per_prompt, n_cand]
    best = sims.argmax(dim=1)
    keep = [g * n_cand + int(b) for g, b in enumerate(best)]
    return audio[keep], keep, sims.max(dim=1).values.numpy()
