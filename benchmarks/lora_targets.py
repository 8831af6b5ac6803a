"""Where LoRA pays on the shipped UNet: attention projections alone vs attention + ResNet convolutions, ranks 4,
16 and 64. Prints each adapter's trainable parameters, file size and the time of one training step (forward +
backward + AdamW on the adapter) as a ratio to the attention-only rank-4 step, measured in the same run.

    PYTHONPATH=$PWD OMP_NUM_THREADS=2 python benchmarks/lora_targets.py [--model checkpoints] [--batch 4]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch


def step_time(unet, batch: int, frames: int, reps: int) -> float:
    """Median seconds of one training step on random latents (2.56 s windows: 256 mel frames, 64 bins, VAE /4)."""
    params = [p for p in unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(batch, 8, frames // 4, 16, generator=gen)
    cond = torch.randn(batch, 512, generator=gen)
    t = torch.randint(0, 1000, (batch,), generator=gen)
    times = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        pred = unet(z, t, encoder_hidden_states=None, class_labels=cond).sample
        loss = (pred - z).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    from diffusers import UNet2DConditionModel
    from peft import inject_adapter_in_model

    from tta.lora import adapter_state, lora_config, save_adapter

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="checkpoints")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    base = UNet2DConditionModel.from_pretrained(str(Path(args.model) / "unet")).train()
    base.requires_grad_(False)
    total = sum(p.numel() for p in base.parameters())
    print(
        f"UNet {total / 1e6:.1f} M params; batch {args.batch} x {args.frames} frames; torch threads "
        f"{torch.get_num_threads()}"
    )
    print(f"{'targets':10} {'rank':>4} {'params':>9} {'% UNet':>7} {'file KiB':>9} {'step s':>7} {'ratio':>6}")
    ref = None
    for conv in (False, True):
        for rank in (4, 16, 64):
            unet = copy.deepcopy(base)
            config = lora_config(rank=rank, conv=conv)
            inject_adapter_in_model(config, unet, adapter_name="x")
            n = sum(p.numel() for p in unet.parameters() if p.requires_grad)
            with tempfile.TemporaryDirectory() as tmp:
                path = save_adapter(Path(tmp) / "a.safetensors", adapter_state(unet, "x"), config, None)
                size = path.stat().st_size
            sec = step_time(unet, args.batch, args.frames, args.reps)
            ref = ref or sec
            targets = "attn+conv" if conv else "attn"
            print(
                f"{targets:10} {rank:4d} {n:9d} {100 * n / total:6.2f}% {size / 1024:9.0f} {sec:7.2f} {sec / ref:6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
