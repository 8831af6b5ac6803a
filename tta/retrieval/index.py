"""A retrieval index on disk: the sound library a retrieval-conditioned model (Re-AudioLDM) draws neighbours from.

Each entry is one recording: its CLAP audio embedding, the mean CLAP text embedding of its captions (when it has
any), a compact summary of its VAE latents (per latent channel and frequency bin, the mean and standard deviation
over time: what the UNet's retrieval tokens take) and its metadata (path, captions, group, labels, and the file's
size and modification time so a rebuild re-embeds only what changed).

A prompt finds its neighbours by text: the search key of a captioned entry is its caption embedding (text-to-text
cosine, which a small CLAP ranks far more reliably than text-to-audio), of an uncaptioned one its audio embedding.
Keys live in a FAISS index: exact inner product (``IndexFlatIP``) up to :data:`EXACT_LIMIT` entries, HNSW graph
search past it (``benchmarks/bench_index.py`` measures both).

Folder layout (``tta index build``)::

    INDEX/index.json          format version, CLAP fingerprint and dimensions, counts, FAISS kind
    INDEX/entries.jsonl       one JSON object per entry, in row order
    INDEX/vectors.safetensors audio [N, D], text [N, D] (zero rows: no captions), latent [N, L]
    INDEX/keys.faiss          the FAISS index over the search keys
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tta.errors import InputError, ModelLoadError

FORMAT = "tta-retrieval-index"
VERSION = 1
INFO_NAME = "index.json"
ENTRIES_NAME = "entries.jsonl"
VECTORS_NAME = "vectors.safetensors"
FAISS_NAME = "keys.faiss"
EXACT_LIMIT = 20_000  # entries searched exactly (~3 ms a query here); past it, HNSW (benchmarks/bench_index.py)
HNSW_NEIGHBOURS = 32


@dataclass
class Neighbours:
    """What :meth:`RetrievalIndex.search` returns for B queries.

    Attributes:
        rows: [B, k] entry rows (-1 where fewer than k entries qualified).
        scores: [B, k] cosine of each query with the entry's search key (-inf for missing rows).
    """

    rows: torch.Tensor
    scores: torch.Tensor

    @property
    def valid(self) -> torch.Tensor:
        return self.rows >= 0

    @classmethod
    def none(cls, batch: int, k: int) -> Neighbours:
        """No neighbours at all: [batch, k] of -1 rows and -inf scores."""
        return cls(torch.full((batch, k), -1, dtype=torch.long), torch.full((batch, k), float("-inf")))


def build_faiss(keys: np.ndarray, kind: str = "auto"):
    """A FAISS inner-product index over L2-normalised ``keys`` [N, D] (float32): ``"flat"`` (exact), ``"hnsw"``,
    or ``"auto"`` (flat up to :data:`EXACT_LIMIT` entries)."""
    import faiss

    if kind == "auto":
        kind = "flat" if len(keys) <= EXACT_LIMIT else "hnsw"
    if kind == "flat":
        index = faiss.IndexFlatIP(keys.shape[1])
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(keys.shape[1], HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 128
    else:
        raise InputError(f"FAISS index kind must be 'auto', 'flat' or 'hnsw', got {kind!r}")
    index.add(np.ascontiguousarray(keys, dtype=np.float32))
    return index


def faiss_kind(index) -> str:
    import faiss

    return "hnsw" if isinstance(index, faiss.IndexHNSW) else "flat"


class RetrievalIndex:
    """Entries (metadata dicts) with their vectors, and a FAISS index over their search keys.

    Args:
        entries: one dict per entry (``path``, ``captions``, ``group``...; JSON-serialisable).
        audio: [N, D] CLAP audio embeddings (normalised here).
        text: [N, D] mean CLAP caption embeddings, zero rows for entries without captions.
        latent: [N, L] latent summaries (see the module docstring).
        clap_fingerprint: :func:`tta.loading.clap_fingerprint` of the CLAP that embedded them.
        latent_shape: (channels, frequency bins) of the VAE latents summarised (L = 2 * C * F).
        faiss_index: a prebuilt FAISS index over :meth:`keys` (default: built here, ``kind``).
    """

    def __init__(
        self,
        entries: list[dict],
        audio: torch.Tensor,
        text: torch.Tensor,
        latent: torch.Tensor,
        clap_fingerprint: str | None,
        latent_shape: tuple[int, int],
        faiss_index=None,
        kind: str = "auto",
    ):
        n = len(entries)
        if n == 0:
            raise InputError("a retrieval index needs at least one entry")
        for name, t in (("audio", audio), ("text", text), ("latent", latent)):
            if t.ndim != 2 or t.shape[0] != n:
                raise InputError(f"index {name} vectors must be [{n}, dim], got {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                raise InputError(f"index {name} vectors hold non-finite values")
        if text.shape[1] != audio.shape[1]:
            raise InputError(f"index text vectors are {text.shape[1]}-d, audio vectors {audio.shape[1]}-d")
        if latent.shape[1] != 2 * latent_shape[0] * latent_shape[1]:
            raise InputError(f"latent summaries are {latent.shape[1]}-d; latent shape {latent_shape} needs 2*C*F")
        self.entries = list(entries)
        self.audio = F.normalize(audio.detach().float(), dim=-1)
        self.text = text.detach().float()
        self.latent = latent.detach().float()
        self.clap_fingerprint = clap_fingerprint
        self.latent_shape = (int(latent_shape[0]), int(latent_shape[1]))
        self.faiss = faiss_index if faiss_index is not None else build_faiss(self.keys().numpy(), kind)
        if self.faiss.ntotal != n or self.faiss.d != self.embedding_dim:
            raise ModelLoadError(
                f"the FAISS index holds {self.faiss.ntotal} {self.faiss.d}-d keys; the index has {n} "
                f"{self.embedding_dim}-d entries"
            )
        self._group_rows: dict[str, list[int]] | None = None
        self.folder: str | None = None  # where it was loaded from

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def embedding_dim(self) -> int:
        return int(self.audio.shape[1])

    @property
    def captioned(self) -> torch.Tensor:
        """[N] bool: entries with captions (a text embedding)."""
        return self.text.norm(dim=-1) > 0

    def keys(self) -> torch.Tensor:
        """[N, D] normalised search keys: the caption embedding where there is one, else the audio embedding."""
        return torch.where(self.captioned[:, None], F.normalize(self.text, dim=-1), self.audio)

    def rows_of_groups(self, groups) -> list[int]:
        """Rows of every entry whose ``group`` (source recording) is in ``groups``."""
        if self._group_rows is None:
            self._group_rows = {}
            for row, entry in enumerate(self.entries):
                self._group_rows.setdefault(str(entry.get("group", entry.get("path"))), []).append(row)
        return [row for g in groups for row in self._group_rows.get(str(g), [])]

    def search(self, queries: torch.Tensor, k: int, exclude: list[set[int]] | None = None) -> Neighbours:
        """The ``k`` entries nearest each of the [B, D] ``queries`` (CLAP text embeddings), best first.

        ``exclude[b]`` holds rows query b must not get (training: the clip itself and its source recording).
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"top_k must be an integer >= 1, got {k!r}")
        if queries.ndim != 2 or queries.shape[1] != self.embedding_dim:
            raise InputError(
                f"this index holds {self.embedding_dim}-d CLAP embeddings; got queries of shape "
                f"{tuple(queries.shape)} (an index built with another CLAP? rebuild it with this model)"
            )
        q = F.normalize(queries.detach().float().cpu(), dim=-1).numpy()
        extra = max((len(e) for e in exclude), default=0) if exclude else 0
        want = min(k + extra, len(self))
        scores, rows = self.faiss.search(np.ascontiguousarray(q), want)
        out = Neighbours.none(len(q), k)
        for b in range(len(q)):
            banned = exclude[b] if exclude else ()
            kept = [(r, s) for r, s in zip(rows[b].tolist(), scores[b].tolist()) if r >= 0 and r not in banned][:k]
            for j, (r, s) in enumerate(kept):
                out.rows[b, j], out.scores[b, j] = r, s
        return out

    # ------------------------------------------------------------------ disk

    def features(self, hits: Neighbours, valid: torch.Tensor | None = None) -> torch.Tensor:
        """[B, K * F]: the packed features (:func:`tta.models.retrieval.pack_neighbours`) of the entries ``hits``
        found, what a :class:`~tta.models.retrieval.RetrievalUNet` takes after each CLAP condition row. ``valid``
        [B, K] (default ``hits.valid``) zeroes the neighbours left out."""
        from tta.models.retrieval import pack_neighbours

        rows = hits.rows.clamp(min=0)
        valid = hits.valid if valid is None else valid
        return pack_neighbours(self.audio[rows], self.latent[rows], hits.scores.clamp(min=-1.0), valid)

    def info(self) -> dict:
        """What ``index.json`` records (and ``tta index info`` prints)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "entries": len(self),
            "captioned": int(self.captioned.sum()),
            "groups": len({str(e.get("group", e.get("path"))) for e in self.entries}),
            "embedding_dim": self.embedding_dim,
            "latent_shape": list(self.latent_shape),
            "clap_fingerprint": self.clap_fingerprint,
            "faiss": faiss_kind(self.faiss),
        }

    def save(self, folder: str | os.PathLike, extra_info: dict | None = None) -> Path:
        """Write the index folder; every file is written beside and renamed in, the ``index.json`` last."""
        import faiss
        from safetensors.torch import save

        from tta.audio.io import write_atomic

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"audio": self.audio, "text": self.text, "latent": self.latent}
        tensors = {k: v.detach().cpu().float().contiguous() for k, v in tensors.items()}
        write_atomic(folder / VECTORS_NAME, save(tensors, metadata={"format": "pt"}))
        write_atomic(folder / ENTRIES_NAME, "".join(json.dumps(e, sort_keys=True) + "\n" for e in self.entries))
        write_atomic(folder / FAISS_NAME, faiss.serialize_index(self.faiss).tobytes())
        write_atomic(folder / INFO_NAME, json.dumps({**self.info(), **(extra_info or {})}, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> RetrievalIndex:
        """Read a folder written by :meth:`save`; a missing, corrupt or foreign file raises
        :class:`ModelLoadError` naming it."""
        import faiss
        from safetensors.torch import load_file

        folder = Path(folder).expanduser()
        info_file = folder / INFO_NAME
        if not folder.is_dir():
            raise ModelLoadError(
                f"no retrieval index at {folder} (build one with `tta index build SOURCE -o {folder}`)"
            )
        try:
            info = json.loads(info_file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ModelLoadError(f"cannot read {info_file}: {err} (not a tta index, or a corrupt one)") from err
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise ModelLoadError(f"{info_file} is not a tta retrieval index")
        if info.get("version") != VERSION:
            raise ModelLoadError(
                f"{folder} is a version {info.get('version')} index; this tta reads version {VERSION}: rebuild it "
                f"with `tta index build`"
            )
        try:
            tensors = load_file(str(folder / VECTORS_NAME))
            audio, text, latent = tensors["audio"], tensors["text"], tensors["latent"]
        except Exception as err:  # missing, truncated, not safetensors, a tensor missing
            raise ModelLoadError(f"cannot load the index vectors {folder / VECTORS_NAME}: {err}") from err
        try:
            entries = [json.loads(line) for line in (folder / ENTRIES_NAME).read_text().splitlines() if line.strip()]
        except (OSError, json.JSONDecodeError) as err:
            raise ModelLoadError(f"cannot read {folder / ENTRIES_NAME}: {err}") from err
        try:
            raw = np.frombuffer((folder / FAISS_NAME).read_bytes(), dtype=np.uint8)
            index = faiss.deserialize_index(raw)
        except Exception as err:
            raise ModelLoadError(f"cannot load the FAISS index {folder / FAISS_NAME}: {err}") from err
        if len(entries) != info.get("entries") or audio.shape[0] != len(entries):
            raise ModelLoadError(
                f"{folder}: index.json says {info.get('entries')} entries, {ENTRIES_NAME} has {len(entries)}, "
                f"{VECTORS_NAME} {audio.shape[0]} (an interrupted write? rebuild it)"
            )
        try:
            index = cls(
                entries,
                audio,
                text,
                latent,
                info.get("clap_fingerprint"),
                tuple(info.get("latent_shape", (0, 0))),
                faiss_index=index,
            )
        except InputError as err:
            raise ModelLoadError(f"{folder}: {err}") from err
        index.folder = str(folder.resolve())
        return index

    def check_compatible(self, clap_fingerprint: str | None, embedding_dim: int, latent_shape, where: str) -> None:
        """Raise :class:`InputError` when this index was built with another CLAP (or VAE grid) than a model's."""
        if embedding_dim != self.embedding_dim:
            raise InputError(
                f"{where}: the index holds {self.embedding_dim}-d CLAP embeddings, the model's CLAP makes "
                f"{embedding_dim}-d ones: rebuild the index with this model (`tta index build --model ...`)"
            )
        if clap_fingerprint and self.clap_fingerprint and clap_fingerprint != self.clap_fingerprint:
            raise InputError(
                f"{where}: the index was built with another CLAP (fingerprint {self.clap_fingerprint}, the model's "
                f"is {clap_fingerprint}): rebuild it with this model (`tta index build --model ...`)"
            )
        if tuple(latent_shape) != self.latent_shape:
            raise InputError(
                f"{where}: the index summarises latents of shape {self.latent_shape}, the model's VAE makes "
                f"{tuple(latent_shape)}: rebuild it with this model"
            )
