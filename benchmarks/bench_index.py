"""Retrieval index scale: build time and query latency of exact (flat) and approximate (HNSW) search, side by side.

Synthetic CLAP-like entries (unit-norm 512-d keys drawn around 500 cluster centres, as captions of a few hundred
sound classes would be) at 1k, 10k and 100k entries; queries are noisy copies of held-out points. For each size
and kind: FAISS build time, the whole ``RetrievalIndex`` (what ``tta index build`` makes after embedding), the
latency of one query and of a batch of 16 (one training step), and HNSW's recall@k against exact search.

    .venv/bin/python benchmarks/bench_index.py                    # 1k, 10k, 100k; k = 4
    .venv/bin/python benchmarks/bench_index.py --sizes 1000 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit

import numpy as np
import torch


def synthetic(n: int, d: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    import faiss

    from tta.retrieval.index import RetrievalIndex, build_faiss

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((500, args.dim)) / np.sqrt(args.dim)
    print(f"{args.threads} thread(s), {args.dim}-d keys, k = {args.k}, {args.queries} single queries per row")
    print(
        "| entries | search | FAISS build s | index build s | 1 query ms | 16 queries ms | recall@k | vs flat (1 query) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        keys = synthetic(n, args.dim, rng, centres)
        queries = synthetic(args.queries, args.dim, rng, centres)
        batch = torch.from_numpy(queries[:16])
        entries = [{"id": str(i), "path": str(i)} for i in range(n)]
        zeros = torch.zeros(n, args.dim)
        latent = torch.zeros(n, 2)
        exact_rows, flat_ms = None, None
        for kind in ("flat", "hnsw"):
            start = time.perf_counter()
            build_faiss(keys, kind)
            faiss_s = time.perf_counter() - start
            start = time.perf_counter()
            index = RetrievalIndex(entries, torch.from_numpy(keys), zeros, latent, None, (1, 1), kind=kind)
            index_s = time.perf_counter() - start
            one = [torch.from_numpy(q[None]) for q in queries]
            single = statistics.median(
                timeit.repeat(lambda i=index, o=one: [i.search(q, args.k) for q in o], number=1, repeat=3)
            )
            single = single / len(one) * 1000
            many = (
                statistics.median(timeit.repeat(lambda i=index, b=batch: i.search(b, args.k), number=1, repeat=20))
                * 1000
            )
            rows = np.stack([index.search(q, args.k).rows[0].numpy() for q in one])
            if kind == "flat":
                exact_rows, flat_ms = rows, single
            recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(rows, exact_rows)])
            print(
                f"| {n:,} | {kind} | {faiss_s:.2f} | {index_s:.2f} | {single:.3f} | {many:.3f} | {recall:.3f} | "
                f"{flat_ms / single:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
