"""Embedding a library into a :class:`~tta.retrieval.index.RetrievalIndex` with a model's own CLAP and VAE.

Per recording: the CLAP audio embedding (the mean of up to four 5 s windows of its first 20 s, as the prior and
the evaluation embed clips), the mean CLAP text embedding of its captions, and the summary of the VAE latents of
its first :data:`LATENT_SECONDS` (mean and standard deviation over time per latent channel and frequency bin).

Rebuilding over an existing index re-embeds only the recordings that are new or whose file changed (size or
modification time); unchanged ones keep their vectors, and recordings no longer in the source are dropped.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch

from tta.errors import InputError
from tta.retrieval.index import RetrievalIndex

LATENT_SECONDS = 10.0
CLAP_SECONDS = 20.0


@dataclass
class BuildReport:
    embedded: int = 0
    reused: int = 0
    removed: int = 0
    skipped: list[str] = field(default_factory=list)


def file_stamp(path: str) -> dict:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


@torch.no_grad()
def latent_summary(pipe, wav: torch.Tensor) -> torch.Tensor:
    """A waveform [N] at the model's rate -> [2 * C * F]: per latent channel and frequency bin, the mean and the
    standard deviation over time of the VAE latents (mode, scaled) of its first :data:`LATENT_SECONDS`."""
    from tta.models.vae import vae_downsample_factor

    wav = wav[: int(LATENT_SECONDS * pipe.sample_rate)]
    mel = pipe.mel_frontend().to(pipe.device)(wav.to(pipe.device))  # [T, n_mels]
    factor = vae_downsample_factor(pipe.vae)
    frames = max(factor, math.ceil(mel.shape[0] / factor) * factor)
    mel = torch.nn.functional.pad(mel, (0, 0, 0, frames - mel.shape[0]), value=math.log(1e-5))
    z = pipe.encode_mel(mel[None, None])[0]  # [C, T', F]
    return torch.cat([z.mean(1).flatten(), z.std(1, unbiased=False).flatten()]).float().cpu()


@torch.no_grad()
def caption_embeddings(clap, captions: list[list[str]], batch: int = 256) -> torch.Tensor:
    """[N, D]: each entry's mean (normalised) caption text embedding; zero rows for entries without captions.
    Each distinct caption is embedded once."""
    unique = sorted({c for caps in captions for c in caps})
    table: dict[str, torch.Tensor] = {}
    for i in range(0, len(unique), batch):
        chunk = unique[i : i + batch]
        emb = torch.nn.functional.normalize(clap.encode_text(chunk).float().cpu(), dim=-1)
        table.update(zip(chunk, emb))
    dim = clap.embedding_dim
    rows = [torch.stack([table[c] for c in caps]).mean(0) if caps else torch.zeros(dim) for caps in captions]
    return torch.stack(rows) if rows else torch.zeros(0, dim)


@torch.no_grad()
def build_index(
    entries: list[dict],
    pipe,
    clap_fingerprint: str | None,
    previous: RetrievalIndex | None = None,
    kind: str = "auto",
    progress: bool = True,
) -> tuple[RetrievalIndex, BuildReport]:
    """Embed ``entries`` (from :mod:`tta.retrieval.sources`) with ``pipe``'s CLAP and VAE into an index.

    Args:
        entries: dicts with ``path`` and ``captions`` (the rest is kept as metadata).
        pipe: a :class:`~tta.pipelines.TTAPipeline` whose CLAP has an audio tower.
        clap_fingerprint: of the model's CLAP (recorded; an index of another CLAP cannot be reused).
        previous: an index to reuse unchanged recordings' vectors from.
        kind: FAISS index kind (:func:`tta.retrieval.index.build_faiss`).

    Returns:
        The index and a :class:`BuildReport` (unreadable or silent files are skipped and listed, never fatal).
    """
    from tqdm.auto import tqdm

    from tta.audio.io import load_audio
    from tta.evaluation.clap_zero_shot import window_embedding

    clap = pipe.clap
    if not getattr(clap, "has_audio", False):
        raise InputError("building an index needs a CLAP with an audio tower; this model's CLAP is text only")
    from tta.models.vae import latent_grid

    grid = latent_grid(pipe.vae, pipe.vocoder.config.model_in_dim)
    old: dict[str, int] = {}
    if previous is not None:
        same_model = previous.clap_fingerprint == clap_fingerprint and previous.latent_shape == grid
        if same_model:
            old = {e["path"]: row for row, e in enumerate(previous.entries)}
        else:
            print("the existing index was built with another model: every recording is embedded afresh")
    report = BuildReport()
    kept, audio, latent = [], [], []
    for entry in tqdm(entries, desc="indexing", unit="file", disable=not progress):
        try:
            stamp = file_stamp(entry["path"])
        except OSError as err:
            report.skipped.append(f"{entry['path']}: {err}")
            continue
        row = old.get(entry["path"])
        if row is not None and all(previous.entries[row].get(k) == v for k, v in stamp.items()):
            audio.append(previous.audio[row])
            latent.append(previous.latent[row])
            report.reused += 1
        else:
            try:
                wav = load_audio(entry["path"], pipe.sample_rate)
            except InputError as err:
                report.skipped.append(str(err))
                continue
            if not abs(wav).max() > 0:
                report.skipped.append(f"{entry['path']}: silent")
                continue
            wav = torch.from_numpy(wav)
            clap_wav = (
                wav if clap.sample_rate == pipe.sample_rate else _resample(wav, pipe.sample_rate, clap.sample_rate)
            )
            audio.append(window_embedding(clap, clap_wav[: int(CLAP_SECONDS * clap.sample_rate)], 5.0, 4).cpu())
            latent.append(latent_summary(pipe, wav))
            report.embedded += 1
        kept.append({**entry, **stamp})
    if previous is not None:
        report.removed = len(set(old) - {e["path"] for e in kept}) if old else 0
    if not kept:
        raise InputError(f"none of the {len(entries)} recordings could be indexed: " + "; ".join(report.skipped[:3]))
    text = caption_embeddings(clap, [e["captions"] for e in kept])
    index = RetrievalIndex(kept, torch.stack(audio), text, torch.stack(latent), clap_fingerprint, grid, kind=kind)
    return index, report


def _resample(wav: torch.Tensor, orig: int, target: int) -> torch.Tensor:
    from tta.audio.io import resample

    return torch.from_numpy(resample(wav.numpy(), orig, target))
