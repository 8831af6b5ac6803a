"""FAD against KAD at several sample sizes: how each moves with the number of evaluated clips.

Evaluated sets: the first n clips (in ``tta generate``'s prompt order), and the further disjoint blocks of n, of a folder of generated clips (``--generated``; e.g. 200 from
``tta generate --prompts-file`` over the corpus classes), and, as the real-vs-real floor, n real clips of the
corpus train split (``--real-draws`` seeded draws). Reference: the corpus valid + test splits. Every set is
embedded once per backend (through ``tta eval``'s embedding cache) and pooled as ``tta eval`` pools frames; the
last column is KAD of one mean embedding per clip instead (the same as pooled for clip-level backends).
Prints a markdown table per backend; ``--json`` writes every figure.

    .venv/bin/python benchmarks/kad_vs_fad.py --generated gen200 --sizes 50 100 200 --backends clap aisfx
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import torch

from tta.evaluation.backends import load_backend
from tta.evaluation.cache import EmbeddingCache
from tta.evaluation.frechet import frechet_distance
from tta.evaluation.inputs import list_audio
from tta.evaluation.kad import kernel_audio_distance, median_pairwise_distance
from tta.evaluation.runner import extract
from tta.paths import cache_dir


def corpus_files(corpus: Path, splits: tuple[str, ...]) -> dict[str, Path]:
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    return {r["id"]: corpus / r["path"] for r in rows if r["split"] in splits}


def frames(features: dict, keys) -> np.ndarray:
    return np.concatenate([features[k].frames for k in keys])


def clip_means(features: dict, keys) -> np.ndarray:
    return np.stack([features[k].frames.mean(axis=0) for k in keys])


def scores(features: dict, keys, ref: dict, h_ref: float) -> dict:
    """FAD and KAD of the pooled frames of ``keys`` against ``ref``'s, and KAD of per-clip mean embeddings."""
    evaluated, reference = frames(features, keys), frames(ref, ref)
    return {
        "fad": frechet_distance(evaluated, reference),
        "kad": kernel_audio_distance(evaluated, reference),
        "kad_ref_bandwidth": kernel_audio_distance(evaluated, reference, bandwidth=h_ref),
        "kad_clip_means": kernel_audio_distance(clip_means(features, keys), clip_means(ref, ref)),
        "frames": int(len(evaluated)),
    }


def run_backend(name: str, generated: dict, real: dict, reference: dict, sizes, draws: int) -> list[dict]:
    backend = load_backend(name)
    cache = EmbeddingCache(backend.version())
    gen = extract(backend, generated, cache, desc=f"{name} generated")
    draw_keys = [random.Random(seed).sample(sorted(real), min(max(sizes), len(real))) for seed in range(draws)]
    needed = {k: real[k] for keys in draw_keys for k in keys}
    pool = extract(backend, needed, cache, desc=f"{name} real train")
    ref = extract(backend, reference, cache, desc=f"{name} reference")
    h_ref = median_pairwise_distance(frames(ref, ref))
    rows = []
    order = list(generated)
    for n in sizes:
        for b in range(max(1, len(order) // n)):  # the first n, then the other disjoint blocks of n
            keys = order[b * n : (b + 1) * n]
            row = {"backend": name, "set": "generated", "block": b, "clips": len(keys)}
            rows.append({**row, **scores(gen, keys, ref, h_ref)})
        for seed in range(draws):
            keys = draw_keys[seed][:n]  # nested subsets, as the generated ones
            row = {"backend": name, "set": "real train", "seed": seed, "clips": len(keys)}
            rows.append({**row, **scores(pool, keys, ref, h_ref)})
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| backend | evaluated | clips | frames | FAD | KAD | KAD, reference bandwidth | KAD of clip means |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        label = r["set"] + (f" (draw {r['seed']})" if "seed" in r else "")
        label += f" (clips {r['block'] * r['clips']}-{(r['block'] + 1) * r['clips'] - 1})" if "block" in r else ""
        lines.append(
            f"| {r['backend']} | {label} | {r['clips']} | {r['frames']} | {r['fad']:.4f} | {r['kad']:.4f} | "
            f"{r['kad_ref_bandwidth']:.4f} | {r['kad_clip_means']:.4f} |"
        )
    return "\n".join(lines)


def _index(key: str) -> int:
    tail = key.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generated", required=True, type=Path)
    parser.add_argument("--corpus", default=cache_dir() / "corpus", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--backends", nargs="+", default=["clap", "aisfx"])
    parser.add_argument("--real-draws", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # tta generate names clips <slug>_<index>: in prompt order, the first n cover the classes evenly
    files = list_audio(args.generated, "--generated")
    generated = dict(sorted(files.items(), key=lambda kv: (_index(kv[0]), kv[0])))
    real = corpus_files(args.corpus, ("train",))
    reference = corpus_files(args.corpus, ("valid", "test"))
    rows = []
    for name in args.backends:
        rows += run_backend(name, generated, real, reference, args.sizes, args.real_draws)
        print(table([r for r in rows if r["backend"] == name]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
