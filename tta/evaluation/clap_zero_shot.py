"""CLAP quality on a labelled split: zero-shot classification, text->audio retrieval, held-out mixtures.

Works with any :class:`~tta.models.clap.ClapEncoder`. The corpus is read from its ``manifest.jsonl`` (see
``tta.data``); every function below also takes plain tensors/lists so tests need no corpus.

Metrics (``evaluate_clap``):

* ``zero_shot_top1`` / ``zero_shot_top5``: single-source clips classified among all classes with the text
  prompts ``prompt_fn(class)`` ("the sound of {class}").
* ``paraphrase_top1``: the same with :data:`PARAPHRASES`, our own descriptions that no training caption
  uses; each class is represented by the mean of its normalised paraphrase embeddings.
  ``paraphrase2_top1``: the same with another set (``extra_paraphrases``, e.g. the data module's).
* ``*_balanced_top1``: the mean of per-class accuracies (the split is dominated by a few classes).
* ``retrieval_r1`` / ``retrieval_r5``: text->audio over the split's single-source clips, each clip's own
  first caption as the query; a hit is the query's own clip ranked in the top k (instance level), and
  ``retrieval_class_r1`` / ``_r5``: a hit is any clip of the query's class in the top k.
* ``mixture_top5_both``: mixtures of two clips of a held-out class pair; a hit when both classes are among
  the 5 best-scoring class prompts.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tta.data.prompts import PARAPHRASES

# Generic frames (used when a class has no entry in PARAPHRASES, e.g. in tests with other classes).
PARAPHRASE_TEMPLATES: tuple[str, ...] = (
    "{} can be heard here",
    "listen closely and you will notice {}",
    "an audio recording in which {} is audible",
)


def default_prompt(label: str) -> str:
    return f"the sound of {label}"


def tile_to(wav: torch.Tensor, length: int, gap: int = 0) -> torch.Tensor:
    """Repeat a short clip [N] (with ``gap`` samples of silence between repeats) to exactly ``length``."""
    if wav.numel() >= length:
        return wav[:length]
    unit = torch.cat([wav, wav.new_zeros(gap)])
    return unit.repeat(length // unit.numel() + 1)[:length]


def window_embedding(clap, wav: torch.Tensor, window_s: float = 5.0, max_windows: int = 4) -> torch.Tensor:
    """One clip [N] -> [D]: mean of the normalised embeddings of up to ``max_windows`` windows, renormalised.

    A clip shorter than the window is tiled to fill it (0.25 s gaps), as the training crops do.
    """
    win = int(window_s * clap.sample_rate)
    if wav.numel() <= win:
        chunks = tile_to(wav, win, gap=clap.sample_rate // 4).unsqueeze(0)
    else:
        n = min(max_windows, wav.numel() // win)
        starts = np.linspace(0, wav.numel() - win, n).astype(int)
        chunks = torch.stack([wav[s : s + win] for s in starts])
    return F.normalize(clap.encode_audio(chunks).mean(0), dim=-1)


@torch.no_grad()
def embed_clips(clap, clips: Sequence[torch.Tensor], window_s: float = 5.0, max_windows: int = 4) -> torch.Tensor:
    """list of waveforms [N_i] at 16 kHz -> [len(clips), D] (see :func:`window_embedding`)."""
    return torch.stack([window_embedding(clap, torch.as_tensor(w), window_s, max_windows).cpu() for w in clips])


@torch.no_grad()
def class_text_embeddings(clap, classes: Sequence[str], prompts) -> torch.Tensor:
    """[C, D]: for each class, the renormalised mean of its prompts' embeddings.

    ``prompts`` is a sequence of templates (``"... {} ..."`` strings or callables ``class -> str``), one
    prompt per template and class, or a dict ``{class: [prompt, ...]}`` (a class missing from it gets
    :data:`PARAPHRASE_TEMPLATES`).
    """
    if isinstance(prompts, dict):
        per_class = []
        for c in classes:
            texts = list(prompts.get(c) or [t.format(c) for t in PARAPHRASE_TEMPLATES])
            per_class.append(F.normalize(clap.encode_text(texts).cpu().mean(0), dim=-1))
        return torch.stack(per_class)
    per_template = []
    for t in prompts:
        texts = [t(c) if callable(t) else t.format(c) for c in classes]
        per_template.append(clap.encode_text(texts).cpu())
    return F.normalize(torch.stack(per_template).mean(0), dim=-1)


def zero_shot(audio_emb: torch.Tensor, labels: Sequence[str], classes: Sequence[str], text_emb: torch.Tensor):
    """Top-1/top-5 accuracy of single-label clips; returns ``(top1, top5, per_class_top1)``."""
    index = {c: i for i, c in enumerate(classes)}
    target = torch.tensor([index[lab] for lab in labels])
    ranks = (audio_emb @ text_emb.T).argsort(dim=1, descending=True)
    top1 = ranks[:, 0] == target
    top5 = (ranks[:, :5] == target[:, None]).any(1)
    per_class = {}
    for c in classes:
        mask = target == index[c]
        if mask.any():
            per_class[c] = float(top1[mask].float().mean())
    return float(top1.float().mean()), float(top5.float().mean()), per_class


def retrieval_recall(text_emb: torch.Tensor, audio_emb: torch.Tensor, ks=(1, 5), labels: Sequence[str] = ()):
    """Text->audio recall@k, query i's positive is audio i; with ``labels``, also class-level recall@k."""
    ranks = (text_emb @ audio_emb.T).argsort(dim=1, descending=True)
    out = {}
    own = torch.arange(len(text_emb))[:, None]
    for k in ks:
        out[f"retrieval_r{k}"] = float((ranks[:, :k] == own).any(1).float().mean())
    if labels:
        lab = np.asarray(labels)
        for k in ks:
            hits = lab[ranks[:, :k].numpy()] == lab[:, None]
            out[f"retrieval_class_r{k}"] = float(hits.any(1).mean())
    return out


def mixture_top5_both(mix_emb: torch.Tensor, pairs: Sequence[tuple[str, str]], classes, text_emb) -> float:
    """Fraction of mixtures whose two source classes are both among the 5 best class prompts."""
    if not len(pairs):
        return float("nan")
    index = {c: i for i, c in enumerate(classes)}
    top5 = (mix_emb @ text_emb.T).topk(min(5, len(classes)), dim=1).indices
    hits = [index[a] in row and index[b] in row for row, (a, b) in zip(top5.tolist(), pairs)]
    return float(np.mean(hits))


def mix_pair(a, b, seconds: float | None = None, sr: int = 16000) -> torch.Tensor:
    """Mix two clips [N_a], [N_b] at equal peak level (each scaled to peak 1, summed, rescaled to peak 0.5).

    With ``seconds``, both are first tiled or cut to that length; otherwise the shorter length is used.
    """
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    n = min(len(a), len(b)) if seconds is None else int(seconds * sr)
    a, b = tile_to(a, n, gap=sr // 4), tile_to(b, n, gap=sr // 4)
    a, b = a - a.mean(), b - b.mean()
    mix = a / (a.abs().max() + 1e-8) + b / (b.abs().max() + 1e-8)
    return 0.5 * mix / (mix.abs().max() + 1e-8)


def build_mixtures(clips_by_class: dict, pairs, per_pair: int = 8, seconds: float = 5.0, seed: int = 0):
    """-> (mixture waveforms, their (a, b) pairs): up to ``per_pair`` distinct clip combinations per held-out
    pair whose classes both occur in the split."""
    rng = random.Random(seed)
    mixes, mix_pairs = [], []
    for a, b in pairs:
        combos = [(i, j) for i in range(len(clips_by_class.get(a, []))) for j in range(len(clips_by_class.get(b, [])))]
        for i, j in rng.sample(combos, min(per_pair, len(combos))):
            mixes.append(mix_pair(clips_by_class[a][i], clips_by_class[b][j], seconds))
            mix_pairs.append((a, b))
    return mixes, mix_pairs


def load_split(corpus: str | Path, split: str, max_seconds: float = 20.0, max_items: int | None = None, seed=0):
    """Read a corpus split from ``manifest.jsonl`` -> list of ``{"audio", "labels", "captions", "id"}``."""
    from tta.audio.io import load_audio

    corpus = Path(corpus)
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("split") == split]
    if max_items is not None and len(rows) > max_items:
        rows = random.Random(seed).sample(rows, max_items)
    items = []
    for r in rows:
        wav = load_audio(corpus / r["path"])[: int(max_seconds * 16000)]
        items.append(
            {"audio": torch.from_numpy(wav), "labels": list(r["labels"]), "captions": r["captions"], "id": r["id"]}
        )
    return items


@torch.no_grad()
def evaluate_clap(
    clap,
    items: Sequence[dict],
    classes: Sequence[str],
    held_out_pairs: Sequence[tuple[str, str]] = (),
    prompt_fn: Callable[[str], str] = default_prompt,
    paraphrases: dict | Sequence[str | Callable] | None = None,
    extra_paraphrases: dict | None = None,
    mixtures_per_pair: int = 8,
    per_class: bool = False,
) -> dict:
    """All the metrics of the module docstring on ``items`` (dicts with "audio" [N], "labels", "captions")."""
    single = [it for it in items if len(it["labels"]) == 1 and it["labels"][0] in classes]
    if not single:
        return {}
    labels = [it["labels"][0] for it in single]
    audio_emb = embed_clips(clap, [it["audio"] for it in single])
    templated = class_text_embeddings(clap, classes, [prompt_fn])
    out: dict = {"num_clips": len(single), "num_classes": len(set(labels))}
    out["zero_shot_top1"], out["zero_shot_top5"], per_cls = zero_shot(audio_emb, labels, classes, templated)
    para = class_text_embeddings(clap, classes, PARAPHRASES if paraphrases is None else paraphrases)
    out["paraphrase_top1"], out["paraphrase_top5"], para_cls = zero_shot(audio_emb, labels, classes, para)
    if extra_paraphrases:  # e.g. tta.data.prompts.PARAPHRASE_PROMPTS
        extra = class_text_embeddings(clap, classes, extra_paraphrases)
        out["paraphrase2_top1"], out["paraphrase2_top5"], _ = zero_shot(audio_emb, labels, classes, extra)
    out["zero_shot_balanced_top1"] = float(np.mean(list(per_cls.values())))
    out["paraphrase_balanced_top1"] = float(np.mean(list(para_cls.values())))
    queries = [(it["captions"] or [prompt_fn(lab)])[0] for it, lab in zip(single, labels)]
    out.update(retrieval_recall(clap.encode_text(queries).cpu(), audio_emb, labels=labels))
    by_class = defaultdict(list)
    for it, lab in zip(single, labels):
        by_class[lab].append(it["audio"])
    mixes, mix_pairs = build_mixtures(by_class, held_out_pairs, per_pair=mixtures_per_pair)
    if mixes:
        out["mixture_top5_both"] = mixture_top5_both(embed_clips(clap, mixes), mix_pairs, classes, templated)
        out["num_mixtures"] = len(mixes)
    if per_class:
        out["per_class_top1"] = per_cls
    return out
