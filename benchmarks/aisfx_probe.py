"""Train the aisfx backend's linear probe on the corpus train split and report its top-1 / top-5 on the test split.

Each clip (its first 10 s, as ``load_split`` reads them; 16 kHz resampled to 44.1 kHz) is embedded by the aisfx
CNN as the mean of its block embeddings; a multinomial logistic regression (``tta.evaluation.probe``) is fitted on
the train split's single-label clips (the L2 weight chosen on the valid split from ``--l2``) and saved where the aisfx backend finds it (``<tta cache>/aisfx/probe-*``),
so ``tta eval --backend aisfx`` gets KL / Inception Score over tta's classes and ``eval_ldm.py --judge aisfx``
its judge. Also prints the embedding's runtime per 10 s of audio.

    .venv/bin/python benchmarks/aisfx_probe.py --threads 2
    .venv/bin/python benchmarks/aisfx_probe.py --l2 1e-2 --no-save --embeddings /tmp/aisfx.npz   # one L2, reuse
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from tta.data.captions import CLASSES
from tta.evaluation.backends.aisfx import AisfxBackend
from tta.evaluation.clap_zero_shot import load_split
from tta.evaluation.probe import default_probe_path, topk_accuracy, train_probe
from tta.paths import cache_dir


def embed_split(backend: AisfxBackend, corpus: str, split: str) -> tuple[np.ndarray, list[str], float, float]:
    """Clip embeddings [N, 512] and labels of a split's single-label clips, with the audio seconds and CPU time."""
    items = [it for it in load_split(corpus, split, max_seconds=10.0) if len(it["labels"]) == 1]
    items = [it for it in items if it["labels"][0] in CLASSES]
    start, seconds = time.perf_counter(), 0.0
    emb = []
    for it in items:
        emb.append(backend.clip_embedding(it["audio"].numpy(), 16000))
        seconds += it["audio"].numel() / 16000
    return np.stack(emb), [it["labels"][0] for it in items], seconds, time.perf_counter() - start


def load_embeddings(backend: AisfxBackend, corpus: str, cache: str | None) -> dict:
    """{split: (embeddings, labels)} for train, valid and test, read from / written to ``cache`` (.npz) if given."""
    if cache and Path(cache).is_file():
        with np.load(cache) as data:
            out = {s: (data[f"{s}_x"], [str(v) for v in data[f"{s}_y"]]) for s in ("train", "valid", "test")}
            out["seconds_per_10s_audio"] = float(data["seconds_per_10s_audio"])
        return out
    out, seconds, cpu = {}, 0.0, 0.0
    for split in ("train", "valid", "test"):
        x, y, sec, took = embed_split(backend, corpus, split)
        out[split], seconds, cpu = (x, y), seconds + sec, cpu + took
    out["seconds_per_10s_audio"] = 10.0 * cpu / seconds
    if cache:
        arrays = {f"{s}_{k}": np.asarray(v) for s in ("train", "valid", "test") for k, v in zip("xy", out[s])}
        np.savez(cache, seconds_per_10s_audio=out["seconds_per_10s_audio"], **arrays)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(cache_dir() / "corpus"))
    parser.add_argument("--weights", default=None, help="aisfx checkpoint (default: the installed wheel's)")
    parser.add_argument(
        "--l2",
        type=float,
        nargs="+",
        default=[1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1e-1, 1.0],
        help="L2 weights to try",
    )
    parser.add_argument("--embeddings", default=None, help="an .npz to keep the split embeddings in (reused)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-save", action="store_true", help="do not save the probe")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    backend = AisfxBackend(args.weights, probe=False)
    classes = list(CLASSES)
    splits = load_embeddings(backend, args.corpus, args.embeddings)
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = (splits[s][:2] for s in ("train", "valid", "test"))
    index = {c: i for i, c in enumerate(classes)}
    valid = {}
    for l2 in args.l2:
        valid[l2] = topk_accuracy(
            train_probe(x_train, y_train, classes, l2=l2).rank(x_valid), [index[c] for c in y_valid], 1
        )
    best = max(args.l2, key=lambda v: (valid[v], v))
    probe = train_probe(x_train, y_train, classes, l2=best)
    probe.info.update(corpus=str(args.corpus), split="train", valid_top1=valid[best])
    targets = [index[c] for c in y_test]
    ranks = probe.rank(x_test, classes)
    train_top1 = topk_accuracy(probe.rank(x_train, classes), [index[c] for c in y_train], 1)
    out = {
        "train_clips": len(y_train),
        "test_clips": len(y_test),
        "test_classes": len(set(y_test)),
        "train_top1": train_top1,
        "test_top1": topk_accuracy(ranks, targets, 1),
        "test_top5": topk_accuracy(ranks, targets, 5),
        "valid_top1_per_l2": {str(k): v for k, v in valid.items()},
        "l2": best,
        "seconds_per_10s_audio": splits["seconds_per_10s_audio"],
        "threads": torch.get_num_threads(),
    }
    per_class = {c: [] for c in classes}
    for r, t in zip(ranks, targets):
        per_class[classes[t]].append(r[0] == t)
    out["test_balanced_top1"] = float(np.mean([np.mean(v) for v in per_class.values() if v]))
    print(json.dumps(out, indent=2))
    if not args.no_save:
        path = probe.save(default_probe_path(backend.weights_hash))
        print(f"saved {path}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
