"""Every CPU setting for the AudioLDM-S-size UNet, side by side in one run: the engine table of benchmarks/README.md.

Each setting runs in its own fresh process (thread pools can be set once per process) on the same random
AudioLDM-S-size UNet weights (seed 0) and the same inputs. For each of 5.12 s and 10.24 s of audio it times one
guided step two ways, the conditional and unconditional rows as one batch of 2 and as two calls of batch 1, and
prints the median of ``--repeats`` calls, the ratio to plain torch (diffusers' UNet call: the same module, batch of
2, default settings) and the relative difference of its output to plain torch's.

    .venv/bin/python benchmarks/bench_engine_settings.py --repeats 5
    .venv/bin/python benchmarks/bench_engine_settings.py --only torch-2t,onnx-all-2t
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {  # name -> (engine, intra-op threads, inter-op threads, options)
    "torch-2t": ("torch", 2, 1, {}),
    "torch-1t": ("torch", 1, 1, {}),
    "torch-1t-interop2": ("torch", 1, 2, {}),
    "torch-2t-channels-last": ("torch", 2, 1, {"channels_last": True}),
    "torch-2t-mkldnn-off": ("torch", 2, 1, {"mkldnn": False}),
    "torch-2t-inductor": ("inductor", 2, 1, {}),
    "onnx-all-2t": ("onnx", 2, 1, {"graph_optimization_level": "all"}),
    "onnx-fused-2t": ("onnx", 2, 1, {"graph_optimization_level": "all", "fused": True}),
    "onnx-extended-2t": ("onnx", 2, 1, {"graph_optimization_level": "extended"}),
    "onnx-basic-2t": ("onnx", 2, 1, {"graph_optimization_level": "basic"}),
    "onnx-disable-2t": ("onnx", 2, 1, {"graph_optimization_level": "disable"}),
    "onnx-all-1t": ("onnx", 1, 1, {"graph_optimization_level": "all"}),
    "onnx-all-1t-parallel-inter2": (
        "onnx",
        1,
        2,
        {"graph_optimization_level": "all", "execution_mode": "parallel", "inter_op_threads": 2},
    ),
    "openvino-latency-2t": ("openvino", 2, 1, {"PERFORMANCE_HINT": "LATENCY"}),
    "openvino-throughput-2t": ("openvino", 2, 1, {"PERFORMANCE_HINT": "THROUGHPUT"}),
    "openvino-latency-1t": ("openvino", 1, 1, {"PERFORMANCE_HINT": "LATENCY"}),
}
DURATIONS = (5.12, 10.24)


def latent_shape(unet, seconds: float) -> tuple[int, int, int]:
    """AudioLDM's latent (channels, frames, mel bins / 4) at 16 kHz, hop 160, 64 mel bins, VAE factor 4."""
    frames = -(-round(seconds * 100) // 32) * 32  # mel frames, padded to the VAE x UNet factor (4 x 8)
    return int(unet.config.in_channels), frames // 4, 16


def build(seed: int = 0):
    import torch

    from tta.models.unet import build_unet

    torch.manual_seed(seed)
    unet = build_unet().eval()
    dim = int(unet.config.projection_class_embeddings_input_dim or unet.config.class_embeddings_dim)
    g = torch.Generator().manual_seed(1)
    inputs = {}
    for seconds in DURATIONS:
        shape = latent_shape(unet, seconds)
        inputs[seconds] = (torch.randn(2, *shape, generator=g), torch.randn(2, dim, generator=g))
    return unet, inputs


def onnx_file(cache: Path, unet) -> Path:
    """The UNet exported once per run (tta.engine's exporter), shared by every ONNX Runtime / OpenVINO setting."""
    from types import SimpleNamespace

    from tta.engine.export import entry_is_valid, export_component

    path = cache / "unet.onnx"
    if not entry_is_valid(path):
        start = time.perf_counter()
        layout = lambda s: SimpleNamespace(latent_shape=latent_shape(unet, s))  # noqa: E731
        export_component(SimpleNamespace(unet=unet, layout=layout), "unet", path)
        print(f"export: {time.perf_counter() - start:.1f} s, {path.stat().st_size / 2**20:.0f} MiB", file=sys.stderr)
    return path


def fused_file(path: Path) -> Path:
    """ONNX Runtime's transformer optimizer over the exported UNet (its CPU-capable fusions: attention into
    MultiHeadAttention, LayerNorm, GELU; the CUDA-only GroupNorm / NHWC / packed-QKV fusions off)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    out = path.with_name("unet-fused.onnx")
    if not out.is_file():
        options = FusionOptions("unet")
        options.use_multi_head_attention = True
        for name in ("enable_group_norm", "enable_skip_group_norm", "enable_nhwc_conv", "enable_bias_splitgelu"):
            setattr(options, name, False)
        options.enable_packed_qkv = options.enable_packed_kv = options.enable_bias_add = False
        optimize_model(str(path), "unet", optimization_options=options, use_gpu=False).save_model_to_file(str(out))
    return out


def step_fn(name: str, cache: Path, unet):
    """``fn(x, labels) -> eps`` (numpy) for one setting, and its one-off set-up time (export excluded)."""
    import numpy as np
    import torch

    engine, threads, _, options = SETTINGS[name]
    options = dict(options)
    start = time.perf_counter()
    if engine in ("torch", "inductor"):
        if options.get("channels_last"):
            unet = unet.to(memory_format=torch.channels_last)
        if options.get("mkldnn") is False:
            torch.backends.mkldnn.enabled = False
        module = torch.compile(unet) if engine == "inductor" else unet
        t = torch.tensor(500)

        def fn(x, labels):
            with torch.inference_mode():
                return module(x, t, encoder_hidden_states=None, class_labels=labels).sample.numpy()

        return fn, time.perf_counter() - start
    from tta.engine.runtime import Session

    path = onnx_file(cache, unet)
    if options.pop("fused", False):
        path = fused_file(path)
    session = Session(engine, path, threads=threads, options=options)
    t = np.asarray(500, dtype=np.int64)
    return (lambda x, labels: session(x=x.numpy(), t=t, labels=labels.numpy())), time.perf_counter() - start


def run_one(name: str, repeats: int, cache: Path) -> dict:
    import numpy as np
    import torch

    _, threads, inter, _ = SETTINGS[name]
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(inter)
    unet, inputs = build()
    if SETTINGS[name][0] not in ("torch", "inductor"):
        onnx_file(cache, unet)  # export before the clock starts
    fn, setup = step_fn(name, cache, unet)
    result = {"setup_s": setup}
    for seconds, (x, labels) in inputs.items():
        first = time.perf_counter()
        eps = fn(x, labels)  # warm-up (and inductor's compile)
        result[f"first_{seconds}"] = time.perf_counter() - first
        fn(x[:1], labels[:1])
        batch, split = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x, labels)
            batch.append(time.perf_counter() - start)
            start = time.perf_counter()
            parts = [fn(x[i : i + 1], labels[i : i + 1]) for i in range(2)]
            split.append(time.perf_counter() - start)
        result[f"batch2_{seconds}"] = statistics.median(batch)
        result[f"split_{seconds}"] = statistics.median(split)
        np.save(cache / f"{name}-{seconds}.npy", eps)
        np.save(cache / f"{name}-{seconds}-split.npy", np.concatenate(parts))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated setting names (default: all)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one setting in this process
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.repeats, Path(args.cache))))
        return
    import numpy as np

    names = [n for n in args.only.split(",") if n] or list(SETTINGS)
    if "torch-2t" not in names:
        names.insert(0, "torch-2t")
    cache = Path(tempfile.mkdtemp(prefix="tta-engine-settings-"))
    rows = {}
    for name in names:
        cmd = [sys.executable, __file__, "--one", name, "--repeats", str(args.repeats), "--cache", str(cache)]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
        if done.returncode != 0:
            print(f"{name}: failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else '?'}")
            continue
        rows[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name}: done {rows[name]}", file=sys.stderr)
    base = rows["torch-2t"]
    header = "| setting | " + " | ".join(f"{s} s: batch 2 | 2 calls | vs torch | diff" for s in DURATIONS) + " |"
    print(header)
    print("|---|" + "---:|" * (4 * len(DURATIONS)))
    for name, row in rows.items():
        cells = []
        for s in DURATIONS:
            ref = np.load(cache / f"torch-2t-{s}.npy")
            out = np.load(cache / f"{name}-{s}.npy")
            diff = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
            best = min(row[f"batch2_{s}"], row[f"split_{s}"])
            cells += [
                f"{row[f'batch2_{s}']:.3f} s",
                f"{row[f'split_{s}']:.3f} s",
                f"{base[f'batch2_{s}'] / best:.2f}x",
                f"{diff:.1e}",
            ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    extra = {n: f"set-up {r['setup_s']:.1f} s, first call {r['first_5.12']:.1f} s" for n, r in rows.items()}
    print("one-off costs:", json.dumps(extra, indent=1))


if __name__ == "__main__":
    main()
