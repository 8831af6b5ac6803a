"""Retrieval augmentation on the long tail: per-class CLAP top-1 and Fréchet distance, with and without an index.

Every condition generates the same clips: for each of the corpus's classes, both of our own descriptions of it
(``PARAPHRASES``, never its captions) at each seed. The conditions are the plain model (``--baseline``, default
the shipped one), the retrieval-conditioned model without an index (its null tokens) and with ``--index``.
Scores, by the shipped CLAP:

* top-1: the share of a class's clips whose class the CLAP ranks first among all classes;
* FD: Fréchet distance between the CLAP embeddings of a class's generated clips and of all its real recordings
  (every split; classes with fewer than two recordings get none). With 6 clips against a handful of recordings
  this is a small-sample figure, biased alike for every condition: compare columns, not to other FADs;
* pooled FAD of each group (the ``--rare`` classes with the fewest training recordings, the rest, all).

    .venv/bin/python benchmarks/eval_retrieval.py --model runs/rr/export --index ~/.cache/tta/index-corpus \
        --seeds 0 100 200 --json runs/eval_retrieval.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

from tta.data.captions import CLASSES
from tta.data.prompts import PARAPHRASES
from tta.evaluation.clap_zero_shot import embed_clips, load_split
from tta.evaluation.frechet import frechet_distance
from tta.evaluation.generation import class_ranks, generate
from tta.models.clap import load_clap
from tta.paths import cache_dir
from tta.pipelines import TTAPipeline


def training_counts(corpus: Path, splits=("train", "valid")) -> Counter:
    counts: Counter = Counter()
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("split") in splits:
                counts.update(row["labels"])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the retrieval-conditioned model folder")
    parser.add_argument("--index", required=True, help="its retrieval index (tta index build)")
    parser.add_argument("--baseline", default=None, help="plain model compared (default: the shipped one)")
    parser.add_argument("--corpus", default=str(cache_dir() / "corpus"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 100, 200])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--guidance", type=float, default=6.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--top-k", type=int, default=None, help="neighbours (default: the model's)")
    parser.add_argument("--rare", type=int, default=10, help="the rare group: this many classes (default 10)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = Path(args.corpus)
    classes = list(CLASSES)
    counts = training_counts(corpus)
    rare = sorted(classes, key=lambda c: (counts[c], c))[: args.rare]
    prompts = [(text, c) for c in classes for text in PARAPHRASES[c]]
    clap = load_clap()
    real: dict[str, list[np.ndarray]] = defaultdict(list)
    for split in ("train", "valid", "test"):
        items = load_split(corpus, split, max_seconds=10.0)
        emb = embed_clips(clap, [it["audio"] for it in items]).numpy()
        for it, e in zip(items, emb):
            if len(it["labels"]) == 1:
                real[it["labels"][0]].append(e)

    retrieval = TTAPipeline.from_pretrained(args.model)
    conditions = [
        ("plain model", TTAPipeline.from_pretrained(args.baseline), None),
        ("retrieval model, no index", retrieval, None),
        ("retrieval model + index", retrieval, args.index),
    ]
    results = {}
    for name, pipe, index in conditions:
        kw = {"retrieval": index, "top_k": args.top_k if index else None}
        clips, labels, seconds = [], [], []
        for s in args.seeds:
            audio, per_clip = generate(pipe, [p for p, _ in prompts], args.seconds, args.steps, args.guidance, s, **kw)
            clips.extend(audio)
            labels.extend(c for _, c in prompts)
            seconds.append(per_clip)
        ranks = class_ranks(clap, clips, classes)
        top1 = [classes[r[0]] == c for r, c in zip(ranks, labels)]
        emb = embed_clips(clap, [torch.as_tensor(a) for a in clips]).numpy()
        per_class = {}
        for c in classes:
            rows = [i for i, label in enumerate(labels) if label == c]
            fd = frechet_distance(emb[rows], np.stack(real[c])) if len(real[c]) >= 2 else None
            per_class[c] = {"top1": float(np.mean([top1[i] for i in rows])), "fd": fd, "train_recordings": counts[c]}
        groups = {"rare": rare, "common": [c for c in classes if c not in rare], "all": classes}
        summary = {}
        for group, members in groups.items():
            rows = [i for i, label in enumerate(labels) if label in members]
            ref = np.stack([e for c in members for e in real[c]])
            summary[group] = {
                "top1": float(np.mean([top1[i] for i in rows])),
                "fad": frechet_distance(emb[rows], ref),
                "mean_class_fd": float(
                    np.mean([per_class[c]["fd"] for c in members if per_class[c]["fd"] is not None])
                ),
            }
        results[name] = {"groups": summary, "per_class": per_class, "seconds_per_clip": float(np.mean(seconds))}
        print(
            f"{name}: " + ", ".join(f"{g} top-1 {v['top1']:.1%} FAD {v['fad']:.3f}" for g, v in summary.items()),
            flush=True,
        )

    names = [n for n, _, _ in conditions]
    print(
        f"\nrare = the {args.rare} classes with the fewest training recordings; {len(args.seeds)} seed sets, "
        f"{len(prompts)} prompts, {args.steps} steps, guidance {args.guidance:g}"
    )
    print("| group | " + " | ".join(f"{n}: top-1 / FAD / mean class FD" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for group in ("rare", "common", "all"):
        cells = [results[n]["groups"][group] for n in names]
        print(
            f"| {group} | "
            + " | ".join(f"{c['top1']:.1%} / {c['fad']:.3f} / {c['mean_class_fd']:.3f}" for c in cells)
            + " |"
        )
    print("\n| class (training recordings) | " + " | ".join(f"{n}: top-1 / FD" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for c in sorted(classes, key=lambda c: (counts[c], c)):
        cells = [results[n]["per_class"][c] for n in names]
        fds = ["-" if x["fd"] is None else f"{x['fd']:.3f}" for x in cells]
        print(f"| {c} ({counts[c]}) | " + " | ".join(f"{x['top1']:.0%} / {f}" for x, f in zip(cells, fds)) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rare": rare, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
