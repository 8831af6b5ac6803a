"""What the UNet is conditioned on while it trains: AudioLDM's audio embedding, the caption's text embedding, the
empty text for classifier-free guidance, and (with a retrieval index) each crop's neighbours.

AudioLDM's trick (Liu et al. 2023, sec. 2.2): train on the CLAP *audio* embedding of each crop and sample on the
CLAP *text* embedding of the prompt, which lives in the same space. With ``text_cond_prob`` a crop is conditioned
on its caption's text embedding instead; with ``cond_drop_prob`` on the empty text's, which is what the pipeline
uses as the unconditional branch of guidance, so training and sampling agree. All draws use torch's global RNG,
which the checkpoints hold, so resumed runs are exact.
"""

from __future__ import annotations

import torch


class TrainingConditioner:
    """Condition rows [B, D] (CLAP) or [B, D + K * F] (CLAP + K neighbours' features) for a batch of crops.

    Args:
        clap: the frozen CLAP (``encode_text``).
        cond_drop_prob, text_cond_prob: shares of crops on the empty text, and on their caption's embedding.
        index: a :class:`~tta.retrieval.RetrievalIndex`, or None (no neighbours).
        top_k: neighbours per crop, found by its caption's CLAP text embedding (as prompts find theirs).
        retrieval_drop_prob: share of crops whose neighbours are replaced by null tokens; crops dropped for
            guidance lose them too.
        retrieval_only_prob: share of the crops that keep neighbours whose CLAP row is the empty text's.
        groups: ``{clip id: source recording}``; a crop never sees its own recordings' entries (a mixture's id
            joins its clips' ids with '+').
    """

    def __init__(
        self,
        clap,
        cond_drop_prob: float = 0.1,
        text_cond_prob: float = 0.0,
        index=None,
        top_k: int = 4,
        retrieval_drop_prob: float = 0.1,
        retrieval_only_prob: float = 0.1,
        groups: dict[str, str] | None = None,
    ):
        self.clap = clap
        self.cond_drop_prob, self.text_cond_prob = cond_drop_prob, text_cond_prob
        self.index, self.top_k = index, top_k
        self.retrieval_drop_prob, self.retrieval_only_prob = retrieval_drop_prob, retrieval_only_prob
        self.groups = dict(groups or {})
        self._null: torch.Tensor | None = None
        self._captions: dict[str, torch.Tensor] = {}

    def null_embedding(self, device) -> torch.Tensor:
        """[1, D]: the CLAP embedding of the empty text (the unconditional condition)."""
        if self._null is None:
            with torch.no_grad():
                self._null = self.clap.encode_text([""]).float()
        return self._null.to(device)

    def caption_embeddings(self, captions: list[str]) -> torch.Tensor:
        """[B, D] CLAP text embeddings of ``captions`` (each distinct caption embedded once, then cached)."""
        new = sorted({c for c in captions if c not in self._captions})
        if new:
            if len(self._captions) > 100_000:
                self._captions.clear()
            with torch.no_grad():
                self._captions.update(zip(new, self.clap.encode_text(new).float().cpu()))
        return torch.stack([self._captions[c] for c in captions])

    @torch.no_grad()
    def __call__(self, audio_emb: torch.Tensor, captions: list[str], ids: list[str] | None = None) -> torch.Tensor:
        """Each crop's CLAP audio embedding ``audio_emb`` [B, D], with the drops described above; with an index,
        followed by its neighbours' features (:meth:`neighbours`)."""
        cond, drop = self.clap_rows(audio_emb, captions)
        if self.index is None:
            return cond
        return self.neighbours(cond, captions, ids or [""] * len(captions), drop)

    def clap_rows(self, audio_emb: torch.Tensor, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (rows [B, D], dropped [B] bool): audio, caption (``text_cond_prob``) or empty text (``cond_drop_prob``)."""
        cond = audio_emb.float().clone()
        b = cond.shape[0]
        use_text = torch.rand(b) < self.text_cond_prob
        if use_text.any():
            idx = use_text.nonzero()[:, 0].tolist()
            cond[use_text.to(cond.device)] = self.clap.encode_text([captions[i] for i in idx]).float()
        drop = (torch.rand(b) < self.cond_drop_prob).to(cond.device)
        return torch.where(drop[:, None], self.null_embedding(cond.device).expand_as(cond), cond), drop

    @torch.no_grad()
    def neighbours(self, cond: torch.Tensor, captions: list[str], ids: list[str], drop: torch.Tensor) -> torch.Tensor:
        """Condition rows [B, D] -> [B, D + K * F]: each followed by the packed features
        (:meth:`RetrievalIndex.features`) of its crop's K nearest entries by caption, its own recordings' groups
        excluded. Rows dropped for guidance, and ``retrieval_drop_prob`` of the rest, get none (null tokens);
        ``retrieval_only_prob`` of the rows that keep them lose their CLAP row instead."""
        b = cond.shape[0]
        exclude = [set(self.index.rows_of_groups(self.crop_groups(i))) for i in ids]
        hits = self.index.search(self.caption_embeddings(captions), self.top_k, exclude)
        no_tokens = drop.cpu() | (torch.rand(b) < self.retrieval_drop_prob)
        only = ~no_tokens & (torch.rand(b) < self.retrieval_only_prob)
        feats = self.index.features(hits, hits.valid & ~no_tokens[:, None])
        cond = torch.where(only[:, None].to(cond.device), self.null_embedding(cond.device).expand_as(cond), cond)
        return torch.cat([cond, feats.to(cond.device)], dim=1)

    def crop_groups(self, crop_id: str) -> list[str]:
        """The source recordings of a crop's clips (its ``id``; a mixture joins two with '+')."""
        return [self.groups.get(part, part) for part in crop_id.split("+") if part]


def source_groups(manifest: list[dict], index=None) -> dict[str, str]:
    """``{clip id: source recording}`` from the corpus manifest records (``group``, else the id), then the index's
    own entries for ids the corpus does not have."""
    groups = {rec["id"]: rec.get("group") or rec["id"] for rec in manifest}
    for entry in index.entries if index is not None else ():
        groups.setdefault(str(entry.get("id")), str(entry.get("group")))
    return groups
