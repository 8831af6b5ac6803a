"""Loudness normalisation on real generations: every clip at the target LUFS, no true peak over the limit.

Generates the prompts of ``demo/example_prompts.txt`` (12) with the shipped model at its defaults, *without* the
pipeline's peak limiter (the decoder's raw level, peaks past full scale included), then applies
``tta.audio.loudness.normalize_loudness`` as ``tta generate --loudness LUFS`` does, and prints, per clip, the
loudness and true peak before and after and the gain; the last line says whether all are within 0.5 LU of the
target with no true peak over the limit. Also times the normalisation.

    .venv/bin/python benchmarks/loudness_check.py --target -23 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from tta.audio.limiter import DEFAULT_PEAK_LIMIT
from tta.audio.loudness import measure_loudness, normalize_loudness, true_peak
from tta.paths import REPO_ROOT
from tta.pipelines import TTAPipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts-file", default=str(REPO_ROOT / "demo" / "example_prompts.txt"))
    parser.add_argument("--target", type=float, default=-23.0)
    parser.add_argument("--peak-limit", type=float, default=DEFAULT_PEAK_LIMIT)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    prompts = [p.strip() for p in Path(args.prompts_file).read_text().splitlines() if p.strip()]
    pipe = TTAPipeline.from_pretrained()
    audio = []
    for i in range(0, len(prompts), 4):
        chunk = prompts[i : i + 4]
        out = pipe(
            chunk,
            audio_length_in_s=args.seconds,
            seed=[args.seed + i + k for k in range(len(chunk))],
            peak_limit=None,
            progress=False,
        )
        audio.extend(np.asarray(a, np.float32) for a in out.audios)
    audio = np.stack(audio)
    sr = pipe.sample_rate
    start = time.perf_counter()
    normalised, measured, gain_db = normalize_loudness(audio, sr, args.target, args.peak_limit)
    took = time.perf_counter() - start
    after, peak_before, peak_after = measure_loudness(normalised, sr), true_peak(audio), true_peak(normalised)
    print("| prompt | LUFS before | true peak before | gain dB | LUFS after | true peak after |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = []
    for p, m, pb, g, a, pa in zip(prompts, measured, peak_before, gain_db, after, peak_after):
        print(f"| {p} | {m:.2f} | {pb:.3f} | {g:+.2f} | {a:.2f} | {pa:.3f} |")
        rows.append(dict(prompt=p, lufs_before=m, true_peak_before=pb, gain_db=g, lufs_after=a, true_peak_after=pa))
    ok = bool(np.all(np.abs(after - args.target) <= 0.5) and np.all(peak_after <= args.peak_limit))
    print(
        f"{len(prompts)} clips: loudness {after.min():.2f} to {after.max():.2f} LUFS (target {args.target:g} +-0.5), "
        f"max true peak {peak_after.max():.3f} (limit {args.peak_limit:g}): {'PASS' if ok else 'FAIL'}; "
        f"normalising took {took / len(prompts) * 1000:.0f} ms per {args.seconds:g} s clip"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "pass": ok, "seconds": took}, indent=2) + "\n")


if __name__ == "__main__":
    main()
