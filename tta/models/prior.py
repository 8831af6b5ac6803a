"""A retrieval prior: from a CLAP *text* embedding to the CLAP *audio* embeddings the UNet was trained on.

The UNet learns on CLAP audio embeddings of training clips (and some caption embeddings) but samples from text
embeddings, which sit elsewhere in the shared space (CLAP's "modality gap"). DALL-E 2 closes that gap with a
learned prior; this one is a lookup. It keeps a bank of audio embeddings of real clips and replaces a text
embedding by the (similarity-weighted) mean of its ``top_k`` nearest bank entries, optionally blended back with
the text embedding (``text_weight``), renormalised. It needs no training, works for any prompt CLAP can place,
and is an optional component of a model folder (``prior/``, built by ``tta prior build``); the pipeline applies it to
every non-empty text.

Which entries are nearest is decided by a *key* per entry. Without keys, the key is the audio embedding itself
(text-to-audio retrieval, across the modality gap). With ``keys`` (the CLAP text embeddings of each recording's
captions, as Re-AudioLDM retrieves by caption), ``key_weight`` of the score is text-to-text similarity, which a
small CLAP ranks far more reliably; the values averaged are always the audio embeddings.

It also decides which parts of a prompt name sounds of their own (:meth:`RetrievalPrior.sound_parts`), for
composed guidance (:mod:`tta.sampling.composition`): a part counts when some bank recording matches it well, and
two parts count as two sounds when their mappings differ.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tta.errors import InputError, ModelLoadError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class RetrievalPrior(nn.Module):
    """Map L2-normalised text embeddings [B, D] into the span of a bank of audio embeddings [N, D].

    Args:
        embeddings: the bank, [N, D] audio embeddings (normalised here).
        top_k: how many nearest bank entries make the output (capped at N).
        temperature: softmax temperature over the neighbours' cosine similarities; 0 weights them equally.
        text_weight: in [0, 1]: the share of the text embedding kept in the output (0: bank only).
        clap_fingerprint: :func:`tta.loading.clap_fingerprint` of the CLAP that embedded the bank (written by
            :func:`tta.loading.save_components`; a model folder ignores a prior built with another CLAP).
        max_sources: most sounds a prompt is composed of (:meth:`sound_parts`); 1 turns composition off.
        min_match: a prompt part names a sound only if its text embedding's cosine with its nearest bank entry is
            at least this.
        max_cosine: two parts are two sounds only if the cosine between their mapped conditions is at most this.
        keys: optional [N, D] retrieval keys, one per bank entry: the CLAP text embedding of the recording's
            captions (normalised here). An entry without captions should carry its audio embedding. None: the
            audio embeddings are the keys.
        key_weight: in [0, 1]: the share of key similarity in the retrieval score (the rest is similarity to the
            audio embeddings); it has no effect without ``keys``.
    """

    def __init__(
        self,
        embeddings: torch.Tensor,
        top_k: int = 64,
        temperature: float = 0.03,
        text_weight: float = 0.0,
        clap_fingerprint: str | None = None,
        max_sources: int = 1,
        min_match: float = 0.6,
        max_cosine: float = 0.5,
        keys: torch.Tensor | None = None,
        key_weight: float = 1.0,
    ):
        super().__init__()
        embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise InputError(f"the prior's bank must be a non-empty [N, D] tensor, got {tuple(embeddings.shape)}")
        if not torch.isfinite(embeddings).all():
            raise InputError("the prior's bank holds non-finite values")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"top_k must be an integer >= 1, got {top_k!r}")
        if not temperature >= 0:
            raise InputError(f"temperature must be >= 0, got {temperature!r}")
        if not 0.0 <= text_weight <= 1.0:
            raise InputError(f"text_weight must be in [0, 1], got {text_weight!r}")
        if isinstance(max_sources, bool) or not isinstance(max_sources, int) or max_sources < 1:
            raise InputError(f"max_sources must be an integer >= 1, got {max_sources!r}")
        for name, value in (("min_match", min_match), ("max_cosine", max_cosine)):
            if not -1.0 <= value <= 1.0:  # NaN fails too
                raise InputError(f"{name} must be a cosine in [-1, 1], got {value!r}")
        if not 0.0 <= key_weight <= 1.0:
            raise InputError(f"key_weight must be in [0, 1], got {key_weight!r}")
        if keys is not None:
            keys = torch.as_tensor(keys, dtype=torch.float32)
            if keys.shape != embeddings.shape:
                raise InputError(
                    f"the prior's keys must match its bank {tuple(embeddings.shape)}, got {tuple(keys.shape)}"
                )
            if not torch.isfinite(keys).all():
                raise InputError("the prior's keys hold non-finite values")
        self.register_buffer("embeddings", F.normalize(embeddings, dim=-1))
        self.register_buffer("keys", None if keys is None else F.normalize(keys, dim=-1))
        self.key_weight = float(key_weight)
        self.top_k = top_k
        self.temperature = float(temperature)
        self.text_weight = float(text_weight)
        self.clap_fingerprint = clap_fingerprint
        self.max_sources = max_sources
        self.min_match = float(min_match)
        self.max_cosine = float(max_cosine)

    @property
    def config(self) -> dict:
        return {
            "top_k": self.top_k,
            "temperature": self.temperature,
            "text_weight": self.text_weight,
            "max_sources": self.max_sources,
            "min_match": self.min_match,
            "max_cosine": self.max_cosine,
            "key_weight": self.key_weight,
        }

    def extended(
        self, embeddings: torch.Tensor, keys: torch.Tensor | None = None, same: float = 0.999
    ) -> RetrievalPrior:
        """A prior with the same settings whose bank also holds ``embeddings`` [M, D] (audio) with their ``keys``
        (default: the embeddings); an entry whose audio embedding has cosine >= ``same`` with one already in the
        bank is left out (the bank stores float16: the same recording is not added twice)."""
        new = F.normalize(torch.as_tensor(embeddings, dtype=torch.float32), dim=-1)
        new_keys = new if keys is None else F.normalize(torch.as_tensor(keys, dtype=torch.float32), dim=-1)
        bank = self.embeddings.cpu()
        fresh = (new @ bank.T).amax(dim=1) < same
        own_keys = bank if self.keys is None else self.keys.cpu()
        both_keys = None
        if self.keys is not None or keys is not None:
            both_keys = torch.cat([own_keys, new_keys[fresh]])
        return RetrievalPrior(
            torch.cat([bank, new[fresh]]),
            keys=both_keys,
            clap_fingerprint=self.clap_fingerprint,
            **self.config,
        ).to(self.embeddings.device)

    @property
    def embedding_dim(self) -> int:
        return int(self.embeddings.shape[1])

    @torch.no_grad()
    def forward(self, text: torch.Tensor) -> torch.Tensor:
        """[B, D] text embeddings -> [B, D] L2-normalised conditions."""
        if text.ndim != 2 or text.shape[1] != self.embedding_dim:
            raise InputError(f"the prior takes [B, {self.embedding_dim}] embeddings, got {tuple(text.shape)}")
        query = F.normalize(text.float(), dim=-1)
        bank = self.embeddings.to(query.device)
        sims, idx = self.scores(query).topk(min(self.top_k, bank.shape[0]), dim=1)  # [B, k]
        if self.temperature > 0:
            weights = torch.softmax(sims / self.temperature, dim=1)
        else:
            weights = torch.full_like(sims, 1.0 / sims.shape[1])
        audio = F.normalize((weights.unsqueeze(-1) * bank[idx]).sum(1), dim=-1)
        out = F.normalize(self.text_weight * query + (1.0 - self.text_weight) * audio, dim=-1)
        return out.to(text.dtype)

    def scores(self, query: torch.Tensor) -> torch.Tensor:
        """Retrieval scores [B, N] of normalised queries against the bank: cosine to the audio embeddings, with
        ``key_weight`` of it taken from the keys when there are keys (one product: the blend is linear)."""
        search = self.embeddings if self.keys is None else torch.lerp(self.embeddings, self.keys, self.key_weight)
        return query @ search.to(query.device).T

    @torch.no_grad()
    def sound_parts(self, parts: torch.Tensor) -> list[int]:
        """Which prompt parts (text embeddings [P, D], in prompt order) to compose as separate sounds.

        Parts whose nearest bank entry is at least ``min_match`` are taken best match first, each only if its
        mapping's cosine with every part taken so far is at most ``max_cosine``, up to ``max_sources``.

        Returns:
            The indices of the parts taken, in prompt order, or ``[]`` when fewer than two are (the prompt is then
            one sound).
        """
        if self.max_sources < 2 or parts.shape[0] < 2:
            return []
        query = F.normalize(parts.float(), dim=-1)
        match = (query @ self.embeddings.to(query.device).T).amax(dim=1)  # [P]
        mapped = self(query)  # [P, D]
        taken: list[int] = []
        for i in match.argsort(descending=True, stable=True).tolist():
            if match[i] < self.min_match or len(taken) == self.max_sources:
                break
            if all(float(mapped[i] @ mapped[j]) <= self.max_cosine for j in taken):
                taken.append(i)
        return sorted(taken) if len(taken) >= 2 else []

    def save_pretrained(self, folder: str | os.PathLike, clap_fingerprint: str | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (the bank, float16) into ``folder``, tagged with
        ``clap_fingerprint`` (default: the one it was built or loaded with)."""
        from safetensors.torch import save

        from tta.audio.io import write_atomic

        folder = Path(folder)
        stored = {"embeddings": self.embeddings, "keys": self.keys}
        tensors = {name: t.detach().cpu().half().contiguous() for name, t in stored.items() if t is not None}
        write_atomic(folder / WEIGHTS_NAME, save(tensors, metadata={"format": "pt"}))
        fingerprint = clap_fingerprint or self.clap_fingerprint
        config = {"_class_name": type(self).__name__, "bank_size": int(self.embeddings.shape[0]), **self.config}
        config["caption_keys"] = self.keys is not None
        config["clap_fingerprint"] = fingerprint
        write_atomic(folder / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> RetrievalPrior:
        """Load a folder written by :meth:`save_pretrained`; a missing, truncated or bad file raises
        :class:`ModelLoadError` naming it."""
        from safetensors.torch import load_file

        folder = Path(folder)
        config_file, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        try:
            config = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ModelLoadError(f"cannot read prior config {config_file}: {err}") from err
        try:
            tensors = load_file(str(weights))
            bank = tensors["embeddings"]
        except Exception as err:  # missing, truncated, not safetensors, no "embeddings"
            raise ModelLoadError(f"cannot load the prior's bank {weights}: {err}") from err
        if config.get("caption_keys") and "keys" not in tensors:
            raise ModelLoadError(f"{config_file} says the bank has caption keys, but {weights} holds none")
        names = (
            "top_k",
            "temperature",
            "text_weight",
            "clap_fingerprint",
            "max_sources",
            "min_match",
            "max_cosine",
            "key_weight",
        )
        kwargs = {key: config[key] for key in names if key in config}
        try:
            return cls(bank, keys=tensors.get("keys"), **kwargs)
        except InputError as err:
            raise ModelLoadError(f"{config_file}: {err}") from err
