"""Vocoders vs Griffin-Lim: seconds to turn 10 s of log-mel (1000 frames) into a waveform, side by side.

All start from the same AudioLDM log-mel [1000, 64] of a synthetic 10 s clip (a chirp, tones and noise bursts).
Timed: the shipped ``checkpoints/vocoder`` (or ``--vocoder PATH``: a vocoder folder or a model folder) when there
is one, and random vocoders built from ``--configs`` (default: the ISTFT default, the small HiFi-GAN and
AudioLDM-S's HiFi-GAN; the cost does not depend on the weights). ``--random-small`` times only the tiny vocoder
of ``configs/model/tiny.yaml``. Griffin-Lim is
:func:`tta.evaluation.reconstruction.griffin_lim_from_mel` (mel basis NNLS, then ``--gl-iters`` iterations; numpy,
its BLAS limited to the same thread count). Each is timed ``--repeats`` times at each ``--threads`` count after one
warm-up run; the median is printed with the real-time factor (seconds of compute per second of audio).

    .venv/bin/python benchmarks/bench_vocoder.py                      # shipped vocoder, 1 and 2 threads
    .venv/bin/python benchmarks/bench_vocoder.py --random-small --frames 300 --repeats 2

The machine may be shared: compare the two within one run only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from tta.audio.mel import MelSpectrogram
from tta.evaluation.reconstruction import griffin_lim_from_mel, vocode
from tta.paths import REPO_ROOT, default_model_dir

SR = 16000
HOP = 160


def synthetic_mel(frames: int) -> torch.Tensor:
    """AudioLDM log-mel [frames, 64] of a synthetic clip: a rising chirp, two tones and noise bursts."""
    n = frames * HOP
    t = np.arange(n) / SR
    rng = np.random.default_rng(0)
    wav = 0.2 * np.sin(2 * np.pi * (100 + 300 * t) * t) + 0.1 * np.sin(2 * np.pi * 880 * t)
    wav += 0.05 * np.sin(2 * np.pi * 3000 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    wav += 0.1 * rng.standard_normal(n) * (np.sin(2 * np.pi * 1.3 * t) > 0.8)
    with torch.inference_mode():
        return MelSpectrogram()(torch.from_numpy(wav.astype(np.float32)))


DEFAULT_CONFIGS = ("vocoder_small", "vocoder_hifigan_small", "vocoder_audioldm_s")


def get_vocoders(path: str | None, random_small: bool, configs) -> list[tuple[object, str]]:
    """[(vocoder, description)]."""
    from tta.builders import load_config
    from tta.models.vocoder import build_vocoder

    torch.manual_seed(0)
    if random_small:
        config = load_config(REPO_ROOT / "configs" / "model" / "tiny.yaml")["vocoder"]
        return [(build_vocoder(**config).eval(), "random tiny (configs/model/tiny.yaml)")]
    out = []
    folder = Path(path).expanduser() if path else default_model_dir() / "vocoder"
    if (folder / "config.json").is_file() or (folder / "vocoder" / "config.json").is_file():
        from tta.loading import load_vocoder

        out.append((load_vocoder(folder), f"trained, {folder}"))
    else:
        print(f"no vocoder at {folder}: timing random ones only")
    for name in configs:
        config = load_config(REPO_ROOT / "configs" / "model" / f"{name}.yaml")
        out.append((build_vocoder(**config).eval(), f"random, configs/model/{name}.yaml"))
    return out


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocoder", default=None, help="vocoder or model folder (default checkpoints/vocoder)")
    parser.add_argument("--random-small", action="store_true", help="time the tiny random vocoder of the configs")
    parser.add_argument("--frames", type=int, default=1000, help="mel frames, 100 per second (%(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (%(default)s)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (%(default)s)")
    parser.add_argument("--gl-iters", type=int, default=60, help="Griffin-Lim iterations (%(default)s)")
    parser.add_argument("--configs", nargs="*", default=list(DEFAULT_CONFIGS), help="configs/model/NAME.yaml to time")
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    vocoders = get_vocoders(args.vocoder, args.random_small, args.configs)
    mel = synthetic_mel(args.frames)
    mel_module = MelSpectrogram()
    audio_s = args.frames * HOP / SR
    print(f"{args.frames} frames = {audio_s:.2f} s of audio; median of {args.repeats} runs after a warm-up")

    def run_griffin_lim():
        griffin_lim_from_mel(mel, mel_module, n_iter=args.gl_iters)

    print()
    print("| method | parameters | threads | seconds | RTF | Griffin-Lim s / its s |")
    print("|---|---:|---:|---:|---:|---:|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpool_limits(limits=threads):
            gl_s = median_seconds(run_griffin_lim, args.repeats)
            print(
                f"| Griffin-Lim, {args.gl_iters} iterations | - | {threads} | {gl_s:.3f} | {gl_s / audio_s:.3f} | 1.00x |"
            )
            for vocoder, what in vocoders:

                def run_vocoder(vocoder=vocoder):
                    with torch.inference_mode():
                        vocode(mel[None], vocoder, HOP)

                voc_s = median_seconds(run_vocoder, args.repeats)
                params = sum(p.numel() for p in vocoder.parameters()) / 1e6
                print(
                    f"| {type(vocoder).__name__} ({what}) | {params:.2f} M | {threads} | {voc_s:.3f} "
                    f"| {voc_s / audio_s:.3f} | {gl_s / voc_s:.2f} |"
                )
    print("RTF: seconds of compute per second of audio (below 1: faster than real time).")


if __name__ == "__main__":
    main()
