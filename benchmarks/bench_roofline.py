"""How close each stage of the AudioLDM-S-size pipeline runs to this CPU's float32 peak (#28).

For the UNet (one guided step: a batch of 2), the VAE decoder and AudioLDM-S's HiFi-GAN on random weights of
AudioLDM-S's sizes, the script counts the stage's floating-point operations (``torch.utils.flop_counter``:
convolutions and matrix products, 2 per multiply-add) and times it in torch, then prints its achieved rate
against a large float32 matrix product's on the same threads (the practical peak of this CPU). A stage near
100% of the peak cannot be made much faster by any runtime with the same maths: only fewer operations
(distillation, fewer steps) or lower precision (bfloat16) can.

    .venv/bin/python benchmarks/bench_roofline.py --duration 5.12 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def gemm_rate(n: int, repeats: int) -> float:
    """GFLOP/s of an n x n float32 matrix product (the best of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_wall(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _wall(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def stages(duration: float):
    """(name, module call) for the three stages at ``duration`` seconds of audio, AudioLDM-S sizes."""
    from tta.models.unet import build_unet
    from tta.models.vae import build_vae, vae_downsample_factor
    from tta.models.vocoder import build_vocoder

    torch.manual_seed(0)
    unet, vae, vocoder = build_unet().eval(), build_vae().eval(), build_vocoder().eval()
    frames = int(round(duration * 100))  # hop 160 at 16 kHz
    factor = vae_downsample_factor(vae)
    latents = torch.randn(2, unet.config.in_channels, frames // factor, 64 // factor)
    labels = torch.randn(2, unet.config.projection_class_embeddings_input_dim)
    t = torch.tensor(500)
    mel = torch.randn(1, frames, 64)
    return [
        ("UNet, one guided step (batch 2)", lambda: unet(latents, t, encoder_hidden_states=None, class_labels=labels)),
        ("VAE decoder", lambda: vae.decode(latents[:1])),
        ("HiFi-GAN vocoder", lambda: vocoder(mel)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gemm-size", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=10, help="sampler steps for the whole-pipeline bound")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = gemm_rate(args.gemm_size, args.repeats)
    print(f"{args.duration:g} s of audio, {args.threads} threads, fp32; {args.gemm_size}^2 GEMM: {peak:.0f} GFLOP/s")
    print("\n| stage | GFLOP | seconds (median) | GFLOP/s | of the GEMM's rate |")
    print("|---|---:|---:|---:|---:|")
    measured = []
    with torch.inference_mode():
        for name, call in stages(args.duration):
            counter = FlopCounterMode(display=False)
            with counter:
                call()
            flops = counter.get_total_flops() / 1e9
            wall = statistics.median(_wall(call) for _ in range(args.repeats))
            measured.append((flops, wall))
            print(
                f"| {name} | {flops:.1f} | {wall:.3f} | {flops / wall:.0f} | {flops / wall / peak:.0%} |", flush=True
            )
    (unet_flops, unet_wall), *rest = measured
    total = args.steps * unet_flops + sum(f for f, _ in rest)
    best = max(peak, *(f / w for f, w in measured))  # the best rate seen: a generous ceiling
    now = args.steps * unet_wall + sum(w for _, w in rest)
    print(
        f"\n{args.steps} guided steps + decode: {total:.0f} GFLOP; {now:.2f} s as measured here, at least "
        f"{total / best:.2f} s at the best rate seen ({best:.0f} GFLOP/s): any same-maths float32 runtime is at "
        f"most {now / (total / best):.2f}x faster than torch here (UNet alone: {unet_wall / (unet_flops / best):.2f}x)"
    )


if __name__ == "__main__":
    main()
