"""Winograd convolutions (NNPACK, in the CPU build of torch) against oneDNN's direct ones, layer by layer (#28).

A 3x3 convolution by Winograd's F(6x6, 3x3) needs about a fifth of the multiplications of the direct one: it is
the one way to fewer float32 operations with the same maths (exact up to rounding). torch's CPU wheels carry
NNPACK (``torch._nnpack_spatial_convolution``), which computes it. For every 3x3, stride-1 convolution that the
AudioLDM-S-size UNet (one guided step, batch 2), the AudioLDM-S-size VAE decoder and the shipped VAE decoder
run, the script times oneDNN's convolution against NNPACK's on that layer's own input (median of ``--repeats``)
and prints the ratio, then times each stage whole with every layer switched to NNPACK where it was faster, and
the output's relative L2 difference.

    .venv/bin/python benchmarks/bench_winograd.py --duration 5.12 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from tta.engine.winograd import disable_winograd, eligible, enable_winograd


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def nnpack(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    return torch.cat(
        [torch._nnpack_spatial_convolution(x[i : i + 1], conv.weight, bias, [1, 1]) for i in range(len(x))]
    )


def time_layer(conv: torch.nn.Conv2d, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """(oneDNN, NNPACK) median seconds of ``conv`` on ``x``."""
    return median_time(lambda: F.conv2d(x, conv.weight, conv.bias, padding=1), repeats), median_time(
        lambda: nnpack(x, conv), repeats
    )


def layer_inputs(call, model: torch.nn.Module) -> dict[str, tuple[torch.nn.Conv2d, torch.Tensor]]:
    """Each eligible convolution of ``model`` with the input it gets in ``call()``."""
    seen, hooks = {}, []
    for name, module in model.named_modules():
        if eligible(module, min_channels=1):  # every 3x3 stride-1 layer, however narrow

            def hook(m, args, name=name):
                seen.setdefault(name, (m, args[0].detach().contiguous()))  # returns None: the input is unchanged

            hooks.append(module.register_forward_pre_hook(hook))
    with torch.no_grad():
        call()
    for hook in hooks:
        hook.remove()
    return seen


def stages(duration: float):
    from tta.models.unet import build_unet
    from tta.models.vae import build_vae, vae_downsample_factor
    from tta.pipelines import TTAPipeline

    torch.manual_seed(0)
    unet, vae = build_unet().eval(), build_vae().eval()
    frames = int(round(duration * 100))
    factor = vae_downsample_factor(vae)
    latents = torch.randn(2, unet.config.in_channels, frames // factor, 64 // factor)
    labels = torch.randn(2, unet.config.projection_class_embeddings_input_dim)
    shipped = TTAPipeline.from_pretrained().vae.eval()
    shipped_latents = torch.randn(1, *TTAPipeline.from_pretrained().layout(duration).latent_shape)
    return [
        (
            "AudioLDM-S UNet step (batch 2)",
            unet,
            lambda: unet(latents, 500, encoder_hidden_states=None, class_labels=labels).sample,
        ),
        ("AudioLDM-S VAE decoder", vae, lambda: vae.decode(latents[:1]).sample),
        ("shipped VAE decoder", shipped, lambda: shipped.decode(shipped_latents).sample),
    ]


def switch(model: torch.nn.Module, names: set[str]) -> list:
    """Route the named convolutions through NNPACK; returns what :func:`restore` needs."""
    saved = []
    for name, module in model.named_modules():
        if name in names:
            saved.append(module)
            module.forward = lambda x, m=module: nnpack(x.contiguous(), m)
    return saved


def restore(saved: list) -> None:
    for module in saved:
        del module.forward  # the class's forward again


def parse_args(doc: str | None) -> argparse.Namespace:
    """The Winograd benchmarks' shared options; also sets torch's thread count."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layers", action="store_true", help="print every layer's row")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def main() -> None:
    args = parse_args(__doc__)
    if not torch.backends.nnpack.is_available():  # also initialises NNPACK, which must happen before its first call
        raise SystemExit("this torch build has no NNPACK")
    print(f"{args.duration:g} s of audio, {args.threads} threads, median of {args.repeats}")
    print(
        "| stage | layers | faster in NNPACK | direct (sum of layers) | best per layer | stage: direct | stage: best "
        "| difference | tta's rule: layers, stage |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, model, call in stages(args.duration):
        rows, faster = [], set()
        with torch.no_grad():
            for name, (conv, x) in layer_inputs(call, model).items():
                direct, wino = time_layer(conv, x, args.repeats)
                rows.append((name, tuple(x.shape), conv.out_channels, direct, wino))
                if wino < direct:
                    faster.add(name)
            if args.layers:
                for name, shape, out, direct, wino in rows:
                    ms = f"{direct * 1e3:.2f} ms | {wino * 1e3:.2f} ms ({direct / wino:.2f}x)"
                    print(f"|   {name} {list(shape)} -> {out} | | | {ms} | | | | |")
            reference = call()
            whole = median_time(call, args.repeats)
            saved = switch(model, faster)
            try:
                best = median_time(call, args.repeats)
                diff = ((call() - reference).norm() / reference.norm()).item()
            finally:
                restore(saved)
            switched = getattr(model, "decoder", model)  # what tta switches (tta.engine.winograd's rule)
            ruled = enable_winograd(switched)
            try:
                rule = median_time(call, args.repeats)
            finally:
                disable_winograd(switched)
        d_sum = sum(r[3] for r in rows)
        b_sum = sum(min(r[3], r[4]) for r in rows)
        print(
            f"| {label} | {len(rows)} | {len(faster)} | {d_sum:.3f} s | {b_sum:.3f} s ({d_sum / b_sum:.2f}x) "
            f"| {whole:.3f} s | {best:.3f} s ({whole / best:.2f}x) | {diff:.1e} | {ruled}: {rule:.3f} s ({whole / rule:.2f}x) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
