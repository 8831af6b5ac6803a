"""Winograd F(2x2, 3x3) and F(4x4, 3x3) written in torch ops, against oneDNN, layer by layer (#28).

``bench_winograd.py`` measures NNPACK's F(6x6, 3x3), which loses on the UNet's small maps. This script tries
the smaller tiles, computed the textbook way (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural
Networks"): cut the padded input into overlapping (m+2)x(m+2) tiles, transform them and the weights, do one
batched matrix product per tile position ((m+2)^2 of them, over channels), and transform back. The transforms
are two dense matrix products on a tile-position-major layout. F(2x2, 3x3) needs 16 multiplications where the
direct convolution needs 36 (2.25x fewer), F(4x4, 3x3) 36 where it needs 144 (4x fewer).

For every 3x3 stride-1 convolution of the AudioLDM-S-size UNet (one guided step, batch 2) and of the two VAE
decoders (the stages of ``bench_winograd.py``), it times oneDNN, F(2x2) and F(4x4) on that layer's own input,
then the stage whole with each layer on its fastest, and prints the output's relative L2 difference.

    .venv/bin/python benchmarks/bench_winograd_tiles.py --duration 5.12 --threads 2 [--layers]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from bench_winograd import layer_inputs, median_time, parse_args, restore, stages

# Lavin & Gray (2016), section 4: the transforms for F(2x2, 3x3) (interpolation points 0, 1, -1, inf) and
# F(4x4, 3x3) (0, 1, -1, 2, -2, inf). Rows: B^T, G, A^T.
TRANSFORMS = {
    2: (
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
    4: (
        [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ],
        [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
}


class TileWinograd:
    """A 3x3, stride-1, padding-1 convolution by F(m x m, 3x3), with its weights transformed once."""

    def __init__(self, conv: torch.nn.Conv2d, m: int):
        bt, g, at = (torch.tensor(t, dtype=torch.float64) for t in TRANSFORMS[m])
        self.m, self.a = m, m + 2
        weight = conv.weight.detach().double()  # [K, C, 3, 3]
        u = torch.einsum("ij,kcjl,ml->imck", g, weight, g)  # G g G^T per (K, C), tile position first
        self.u = u.reshape(self.a * self.a, weight.shape[1], weight.shape[0]).float().contiguous()
        self.b = torch.kron(bt, bt).float()  # V = (B^T kron B^T) d, on flattened tiles
        self.at = torch.kron(at, at).float()  # Y = (A^T kron A^T) M
        self.bias = None if conv.bias is None else conv.bias.detach().view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        m, a = self.m, self.a
        th, tw = -(-h // m), -(-w // m)
        x = F.pad(x, (1, tw * m - w + 1, 1, th * m - h + 1))
        tiles = x.unfold(2, a, m).unfold(3, a, m).permute(4, 5, 0, 2, 3, 1).reshape(a * a, -1)
        count = n * th * tw
        v = (self.b @ tiles).view(a * a, count, c)
        prod = torch.bmm(v, self.u)  # [a*a, tiles, K]
        k = prod.shape[-1]
        y = (self.at @ prod.view(a * a, count * k)).view(m, m, n, th, tw, k)
        y = y.permute(2, 5, 3, 0, 4, 1).reshape(n, k, th * m, tw * m)[:, :, :h, :w]
        return y if self.bias is None else y + self.bias


def time_layer(name: str, conv: torch.nn.Conv2d, x: torch.Tensor, repeats: int) -> list[float]:
    """Median seconds of oneDNN, F(2x2, 3x3) and F(4x4, 3x3) on ``x``, after checking both against oneDNN."""
    direct = F.conv2d(x, conv.weight, conv.bias, padding=1)
    times = [median_time(lambda: F.conv2d(x, conv.weight, conv.bias, padding=1), repeats)]
    for m in (2, 4):
        tiled = TileWinograd(conv, m)
        error = ((tiled(x) - direct).norm() / direct.norm()).item()
        if not error < 1e-4:  # a wrong transform must not pass for a fast one
            raise SystemExit(f"F({m}x{m}, 3x3) is off by {error:.1e} on {name}")
        times.append(median_time(lambda f=tiled: f(x), repeats))
    return times


def switch(model: torch.nn.Module, choice: dict[str, int]) -> list:
    """Route each named convolution through its chosen tile size; returns what ``restore`` needs."""
    saved = []
    for name, module in model.named_modules():
        if choice.get(name):
            saved.append(module)
            module.forward = TileWinograd(module, choice[name])
    return saved


def main() -> None:
    args = parse_args(__doc__)
    print(f"{args.duration:g} s of audio, {args.threads} threads, median of {args.repeats}")
    print(
        "| stage | layers | F(2x2) / F(4x4) fastest | direct (sum of layers) | best per layer | stage: direct "
        "| stage: best | difference |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, model, call in stages(args.duration):
        choice, direct_sum, best_sum = {}, 0.0, 0.0
        with torch.no_grad():
            for name, (conv, x) in layer_inputs(call, model).items():
                times = time_layer(name, conv, x, args.repeats)
                best = min(range(3), key=times.__getitem__)
                choice[name] = (0, 2, 4)[best]
                direct_sum, best_sum = direct_sum + times[0], best_sum + times[best]
                if args.layers:
                    cells = " | ".join(f"{t * 1e3:.2f} ms ({times[0] / t:.2f}x)" for t in times[1:])
                    print(
                        f"|   {name} {list(x.shape)} -> {conv.out_channels} | direct {times[0] * 1e3:.2f} ms "
                        f"| {cells} | | | | |"
                    )
            reference = call()
            whole = median_time(call, args.repeats)
            saved = switch(model, choice)
            try:
                fast = median_time(call, args.repeats)
                diff = ((call() - reference).norm() / reference.norm()).item()
            finally:
                restore(saved)
        counts = f"{sum(v == 2 for v in choice.values())} / {sum(v == 4 for v in choice.values())}"
        print(
            f"| {label} | {len(choice)} | {counts} | {direct_sum:.3f} s | {best_sum:.3f} s "
            f"({direct_sum / best_sum:.2f}x) | {whole:.3f} s | {fast:.3f} s ({whole / fast:.2f}x) | {diff:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
