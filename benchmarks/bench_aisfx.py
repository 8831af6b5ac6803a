"""Runtime of the aisfx backend per 10 s of audio: front end (44.1 kHz log-mel) and CNN, and the 16 -> 44.1 kHz
resampling a tta clip needs first. Median of ``--repeats`` runs after one warm-up.

    .venv/bin/python benchmarks/bench_aisfx.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from tta.audio.io import resample
from tta.evaluation.backends.aisfx import SAMPLE_RATE, AisfxBackend, aisfx_blocks, aisfx_logmel


def timed(fn, repeats: int) -> float:
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backend = AisfxBackend(probe=False)
    rng = np.random.default_rng(0)
    wav16 = (0.1 * rng.normal(size=int(args.seconds * 16000))).astype(np.float32)
    wav = resample(wav16, 16000, SAMPLE_RATE)
    blocks = aisfx_blocks(aisfx_logmel(wav)).float()
    t_resample = timed(lambda: resample(wav16, 16000, SAMPLE_RATE), args.repeats)
    t_front = timed(lambda: aisfx_logmel(wav), args.repeats)
    with torch.no_grad():
        t_net = timed(lambda: backend.model(blocks), args.repeats)
    t_all = timed(lambda: backend.clip_embedding(wav16, 16000), args.repeats)
    scale = 10.0 / args.seconds
    print(f"aisfx, {args.seconds:g} s clip ({blocks.shape[0]} blocks), {args.threads} threads, per 10 s of audio:")
    print(
        f"  resample 16 -> 44.1 kHz {t_resample * scale:.3f} s, front end {t_front * scale:.3f} s, CNN {t_net * scale:.3f} s"
    )
    print(f"  total (clip_embedding from 16 kHz) {t_all * scale:.3f} s")


if __name__ == "__main__":
    main()
