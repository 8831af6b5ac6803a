"""Text to the UNet's condition rows: CLAP, the retrieval prior, composition into sounds, retrieved neighbours.

Everything that varies per request (a retrieval index, its ``top_k``, whether the prior is used) is resolved
into a :class:`Conditioning` for that call alone, and passed along; nothing is stored on the pipeline, so
concurrent calls with different indexes cannot see each other's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from tta.errors import InputError
from tta.models.clap.base import ClapEncoder
from tta.pipelines.checks import check_top_k
from tta.sampling.mixing import COMPOSE_MODES


@dataclass(frozen=True)
class Conditioning:
    """How one call conditions the UNet.

    Attributes:
        clap: the CLAP whose text embeddings condition the model.
        prior: the retrieval prior each non-empty text's embedding goes through (None: raw text embeddings); with
            an index it is the model's prior extended by the index's entries.
        index: the :class:`~tta.retrieval.RetrievalIndex` of this call, or None.
        top_k: neighbours per text a retrieval-conditioned UNet attends to (None: it takes none).
    """

    clap: ClapEncoder
    prior: torch.nn.Module | None = None
    index: Any = None
    top_k: int | None = None

    @property
    def can_compose(self) -> bool:
        """Whether prompts can be split into sounds (a prior with ``max_sources`` >= 2)."""
        return self.prior is not None and getattr(self.prior, "max_sources", 1) > 1

    def settings(self) -> dict[str, Any]:
        """What a sidecar records of it."""
        folder = getattr(self.index, "folder", None)
        return {
            "prior": self.prior is not None,
            "retrieval": str(folder) if self.index is not None and folder is not None else None,
            "top_k": self.top_k,
        }


def resolve_conditioning(
    pipe, retrieval: Any = None, top_k: Any = None, extend_prior: bool = True, use_prior: bool = True
) -> Conditioning:
    """The :class:`Conditioning` of one call of ``pipe``.

    Args:
        retrieval: a :class:`~tta.retrieval.RetrievalIndex`, its folder, or None.
        top_k: with a retrieval-conditioned model, neighbours per text (default: as many as it was trained with).
        extend_prior: the model's prior also searches the index's entries (beside its own bank; entries already
            in it are not added twice), so a prompt naming a sound only the index holds gets that sound's CLAP
            audio embedding. Works for a plain model with a prior too.
        use_prior: False conditions on the raw CLAP text embeddings even if the model has a prior.

    Raises:
        InputError: an index for a model that can use none, an index built with another CLAP or VAE, or
            ``top_k`` without an index.
        ModelLoadError: the index folder is missing or corrupt.
    """
    prior = pipe.prior if use_prior else None
    if retrieval is None:
        if top_k is not None:
            raise InputError("top_k needs a retrieval index (retrieval=INDEX, --retrieval INDEX)")
        return Conditioning(pipe.clap, prior)
    top_k = check_top_k(top_k)
    if not pipe.is_retrieval_model and (prior is None or not extend_prior):
        raise InputError(
            "this model can use no retrieval index: it is not retrieval-conditioned (its folder has no "
            "retrieval/; train one with `tta train ldm --retrieval INDEX`) and has no prior/ to extend"
        )
    index, where = _load_index(retrieval)
    index.check_compatible(pipe.clap_fingerprint, pipe.clap.embedding_dim, pipe.latent_grid, where)
    if pipe.is_retrieval_model:
        if index.latent.shape[1] != pipe.unet.encoder.config.latent_dim:
            raise InputError(f"{where}: its latent summaries do not fit this model's retrieval encoder")
        top_k = pipe.unet.top_k if top_k is None else top_k
    else:
        top_k = None
    if prior is not None and extend_prior:
        prior = prior.extended(index.audio, index.keys())
    return Conditioning(pipe.clap, prior, index, top_k)


def _load_index(retrieval: Any):
    from tta.retrieval import RetrievalIndex

    if isinstance(retrieval, RetrievalIndex):
        return retrieval, "retrieval index"
    if not isinstance(retrieval, (str, os.PathLike)):
        raise InputError(f"retrieval must be a RetrievalIndex or its folder, got {type(retrieval).__name__}")
    return RetrievalIndex.load(retrieval), str(retrieval)


def check_compose(
    conditioning: Conditioning, compose: Any, guidance_scale: float, mode: str, folded_guidance: bool = False
) -> bool:
    """Whether prompts are split into sounds: see ``compose`` and ``compose_mode`` in :meth:`TTAPipeline.__call__`.
    ``folded_guidance``: the UNet's rows are guided already (a student), so composed guidance needs no scale."""
    if mode not in COMPOSE_MODES:
        raise InputError(f"compose_mode must be one of {', '.join(COMPOSE_MODES)}, got {mode!r}")
    able = conditioning.can_compose
    guided = guidance_scale > 1.0 or folded_guidance
    if compose is None:
        return able and (mode == "mix" or guided)
    if not isinstance(compose, bool):
        raise InputError(f"compose must be True, False or None, got {compose!r}")
    if compose and not able:
        prior = conditioning.prior
        why = "has no retrieval prior" if prior is None else "has a prior with max_sources 1"
        raise InputError(
            f"compose=True needs the model's retrieval prior with max_sources >= 2; this pipeline {why} "
            "(`tta prior build --max-sources 2`)"
        )
    if compose and mode == "guidance" and not guided:
        raise InputError(f"composed guidance needs guidance (guidance_scale > 1), got {guidance_scale}")
    return compose


def encode_prompts(
    conditioning: Conditioning,
    prompts: list[str],
    negatives: list[str],
    repeat: int,
    guidance_scale: float,
    device: torch.device,
    compose: bool = False,
    found: dict[str, list[dict]] | None = None,
) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor | None, list[list[str]]]:
    """CLAP text embeddings of the prompts and (with guidance) negatives, each [len(prompts) * repeat, D]; with a
    prior, every non-empty text's embedding goes through it (the empty text, the unconditional branch the UNet
    was trained with, never does).

    With ``compose``, a prompt whose parts the prior takes as several sounds is conditioned on each of them:
    ``cond`` is then a list of one [J, D] tensor per latent. Also returns each prompt's condition texts.

    With neighbours (``conditioning.top_k``), every row is followed by the packed features of its text's nearest
    index entries (none for the empty text), and ``found`` gets each text's entries.
    """
    from tta.sampling.composition import split_prompt

    clap, prior = conditioning.clap, conditioning.prior
    raw: dict[str, torch.Tensor] = {}  # each text alone: its embedding never depends on the batch

    def embed(text: str, mapped: bool = True) -> torch.Tensor:
        if text not in raw:
            raw[text] = clap.encode_text([text])
        if not mapped:
            return raw[text]
        row = prior(raw[text]) if prior is not None and text.strip() else raw[text]
        if conditioning.top_k is not None:
            row = torch.cat([row.float(), neighbour_features(conditioning, text, raw[text], found).to(row.device)], 1)
        return row

    sources = []
    for prompt in prompts:
        parts = split_prompt(prompt) if compose else [prompt]
        taken = prior.sound_parts(torch.cat([embed(p, mapped=False) for p in parts])) if compose else []
        sources.append([parts[i] for i in taken] or [prompt])

    def stack(texts: list[str]) -> torch.Tensor:
        return torch.cat([embed(text) for text in texts]).to(device=device, dtype=torch.float32)

    uncond = stack(negatives).repeat_interleave(repeat, dim=0) if guidance_scale > 1.0 else None
    if all(len(texts) == 1 for texts in sources):
        cond = stack([texts[0] for texts in sources]).repeat_interleave(repeat, dim=0)
    else:
        cond = [stack(texts) for texts in sources for _ in range(repeat)]
    return cond, uncond, sources


def neighbour_features(
    conditioning: Conditioning, text: str, query: torch.Tensor, found: dict[str, list[dict]] | None
) -> torch.Tensor:
    """[1, K * F]: the packed features of ``text``'s K nearest index entries (all null for the empty text)."""
    from tta.retrieval import Neighbours

    index, k = conditioning.index, conditioning.top_k
    hits = index.search(query, k) if text.strip() else Neighbours.none(1, k)
    if text.strip() and found is not None:
        found[text] = [
            {
                "id": index.entries[r].get("id"),
                "path": index.entries[r].get("path"),
                "captions": index.entries[r].get("captions", []),
                "score": round(float(s), 4),
            }
            for r, s in zip(hits.rows[0].tolist(), hits.scores[0].tolist())
            if r >= 0
        ]
    return index.features(hits)


def retrieved_rows(sources: list[list[str]], found: dict[str, list[dict]], repeat: int) -> list[list[dict]] | None:
    """Per waveform (``repeat`` per prompt), the retrieved entries of each of its condition texts (None: no
    index entries were searched)."""
    if not found:
        return None
    rows = [[{"text": text, "clips": found.get(text, [])} for text in texts] for texts in sources]
    return [row for row in rows for _ in range(repeat)]
