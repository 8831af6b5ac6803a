"""tta's TTAPipeline vs diffusers' AudioLDMPipeline on the same random audioldm-s-sized weights, side by side.

Both pipelines get the same UNet / VAE / vocoder / CLAP text-encoder weights (random, AudioLDM-S sizes; no
download), the same DDIM scheduler config, steps, guidance, prompt and starting latents. The script times each
end to end (and per stage, by wrapping the modules), checks that the waveforms agree, and prints the ratio.

    .venv/bin/python benchmarks/bench_pipeline.py --duration 5 --steps 10
"""

from __future__ import annotations

import argparse
import copy
import time
from collections import defaultdict

import numpy as np
import torch

from tta.sampling.schedulers import AUDIOLDM_SCHEDULER

PROMPT = "a dog barks while rain falls on a tin roof"
CLAP_TEXT = {  # laion/clap-htsat-unfused text tower (RoBERTa-base + 512-d projection)
    "vocab_size": 50265,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "projection_dim": 512,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}
WORDS = "a dog barks while rain falls on tin roof birds sing people talk car engine thunder wind piano".split()


def build_tokenizer(folder: str):
    """An offline RoBERTa tokenizer (byte-level BPE trained on a few words), 512 tokens max like CLAP's."""
    import inspect
    from pathlib import Path

    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        [" ".join(WORDS)] * 8, vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    bpe.save_model(folder)
    files = {"vocab": str(Path(folder) / "vocab.json"), "merges": str(Path(folder) / "merges.txt")}
    if "vocab_file" in inspect.signature(RobertaTokenizerFast.__init__).parameters:
        files = {"vocab_file": files["vocab"], "merges_file": files["merges"]}
    return RobertaTokenizerFast(**files, model_max_length=512)


def build_components(tokenizer):
    from transformers import ClapTextConfig, ClapTextModelWithProjection

    from tta.models.unet import build_unet
    from tta.models.vae import build_vae
    from tta.models.vocoder import build_vocoder

    torch.manual_seed(0)
    return {
        "unet": build_unet().eval(),
        "vae": build_vae().eval(),
        "vocoder": build_vocoder().eval(),
        "text_encoder": ClapTextModelWithProjection(ClapTextConfig(**CLAP_TEXT)).eval(),
    }


class StageTimer:
    """Accumulates wall time of calls to chosen methods of chosen objects (per instance)."""

    def __init__(self):
        self.times = defaultdict(float)

    def wrap(self, obj, method: str, name: str) -> None:
        fn = getattr(obj, method)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.times[name] += time.perf_counter() - start

        setattr(obj, method, timed)

    def report(self) -> str:
        return ", ".join(f"{k} {v:.1f}s" for k, v in self.times.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--guidance", type=float, default=2.5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--bf16", action="store_true", help="also time tta with bfloat16 UNet/VAE/vocoder")
    parser.add_argument("--engines", default="", help="also time tta with these engines, e.g. onnx,openvino")
    parser.add_argument(
        "--winograd", action="store_true", help="also time each tta contender with enable_winograd_decode (NNPACK)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats of every contender (median)")
    parser.add_argument("--order", choices=["diffusers-first", "tta-first"], default="diffusers-first")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import tempfile

    from diffusers import AudioLDMPipeline, DDIMScheduler

    from tta.models.clap.hf import HFClapText
    from tta.pipelines import TTAPipeline

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(tmp)
    parts = build_components(tokenizer)
    ref = AudioLDMPipeline(scheduler=DDIMScheduler(**AUDIOLDM_SCHEDULER), tokenizer=tokenizer, **parts)
    ref.set_progress_bar_config(disable=True)
    ours_parts = copy.deepcopy(parts)  # tta's speed-ups change memory formats: keep diffusers' modules untouched
    clap = HFClapText(ours_parts.pop("text_encoder"), tokenizer).eval()
    ours = TTAPipeline(
        ours_parts["unet"],
        ours_parts["vae"],
        ours_parts["vocoder"],
        clap,
        {"_class_name": "DDIMScheduler", **AUDIOLDM_SCHEDULER},
    )
    ours.enable_fast_inference()

    shape = ours.layout(args.duration).latent_shape
    latents = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0))
    n_params = sum(p.numel() for m in parts.values() for p in m.parameters()) / 1e6
    print(
        f"audioldm-s-sized random model ({n_params:.0f} M parameters), {args.duration:g} s audio, latents {list(shape)}"
    )
    print(f"DDIM {args.steps} steps, guidance {args.guidance}, fp32, {torch.get_num_threads()} threads")

    def timed_call(stages, call):
        """Run ``call()`` with the (object, method, label) ``stages`` timed; returns (audio, total s, timer)."""
        timer = StageTimer()
        for obj, method, label in stages:
            timer.wrap(obj, method, label)
        start = time.perf_counter()
        try:
            audio = call()
        finally:
            total = time.perf_counter() - start
            for obj, method, _ in stages:
                delattr(obj, method)
        return audio, total, timer

    common = dict(audio_length_in_s=args.duration, num_inference_steps=args.steps, guidance_scale=args.guidance)

    def run_diffusers():
        stages = [
            (ref.text_encoder, "forward", "text"),
            (ref.unet, "forward", "unet"),
            (ref.vae, "decode", "vae"),
            (ref.vocoder, "forward", "vocoder"),
        ]
        return timed_call(stages, lambda: ref(PROMPT, latents=latents.clone(), **common).audios)

    def run_tta(pipe=ours):
        stages = [
            (clap.text_model.text_model, "forward", "text"),
            (pipe.unet, "forward", "unet"),
            (pipe.vae, "decode", "vae"),
            (pipe.vocoder, "forward", "vocoder"),
        ]
        call = lambda: pipe(PROMPT, sampler="ddim", latents=latents.clone(), progress=False, **common).audios  # noqa: E731
        return timed_call(stages, call)

    runs = [("diffusers", run_diffusers), ("tta", run_tta)]
    if args.order == "tta-first":
        runs.reverse()
    if args.bf16:  # an extra run: tta with the UNet, VAE and vocoder in bfloat16 (not the same maths)
        fast = copy.deepcopy(ours).to(dtype=torch.bfloat16)
        runs.append(("tta-bf16", lambda: run_tta(fast)))
    engine_pipes = {}
    for engine in filter(None, args.engines.split(",")):  # tta.engine: exported once into a fresh cache
        import os
        import subprocess

        os.environ["TTA_CACHE"] = tempfile.mkdtemp(prefix="tta-engine-bench-")
        pipe = copy.copy(ours)
        start = time.perf_counter()
        pipe.enable_engine(engine)
        size = subprocess.run(["du", "-sm", os.environ["TTA_CACHE"]], capture_output=True, text=True).stdout.split()[0]
        print(
            f"{engine}: first export + check {time.perf_counter() - start:.1f} s, cache {size} MiB, {pipe.engine_settings}"
        )
        runs.append((f"tta-{engine}", lambda pipe=pipe: run_tta(pipe)))
        engine_pipes[f"tta-{engine}"] = pipe
    if args.winograd:  # the same contenders with the VAE decoder's wide convolutions by Winograd (tta.engine.winograd)
        for name, _ in [r for r in runs if r[0] == "tta" or (r[0].startswith("tta-") and r[0] != "tta-bf16")]:
            from tta.engine.install import torch_module

            pipe = copy.copy(ours if name == "tta" else engine_pipes[name])
            pipe.vae = copy.deepcopy(torch_module(pipe, "vae"))  # the decoder in torch, switched: not ours's
            pipe.enable_winograd_decode()
            runs.append((f"{name}-winograd", lambda pipe=pipe: run_tta(pipe)))
    results, times = {}, {}
    for _ in range(args.repeats):
        for name, fn in runs:
            audio, total, timer = fn()
            results[name] = (audio, total)
            times.setdefault(name, []).append(total)
            print(f"{name:>14}: {total:6.1f} s  ({timer.report()})")
    results = {name: (audio, float(np.median(times[name]))) for name, (audio, _) in results.items()}
    for name in results:
        if name.startswith("tta-") and name != "tta-bf16":
            c, b = results[name][0], results["diffusers"][0]
            k = min(c.shape[-1], b.shape[-1])
            diff = float(np.linalg.norm(c[..., :k] - b[..., :k]) / max(np.linalg.norm(b[..., :k]), 1e-12))
            print(
                f"{name} vs diffusers (median): {results['diffusers'][1] / results[name][1]:.2f}x, waveform diff {diff:.2e}"
            )
    a, b = results["tta"][0], results["diffusers"][0]
    n = min(a.shape[-1], b.shape[-1])
    err = float(np.linalg.norm(a[..., :n] - b[..., :n]) / max(np.linalg.norm(b[..., :n]), 1e-12))
    print(f"waveform relative L2 difference tta vs diffusers: {err:.2e}")
    print(f"speed-up tta / diffusers (both fp32): {results['diffusers'][1] / results['tta'][1]:.2f}x")
    if "tta-bf16" in results:
        c = results["tta-bf16"][0]
        err16 = float(np.linalg.norm(c[..., :n] - b[..., :n]) / max(np.linalg.norm(b[..., :n]), 1e-12))
        print(
            f"tta bf16 vs diffusers fp32: {results['diffusers'][1] / results['tta-bf16'][1]:.2f}x (waveform diff {err16:.2e})"
        )


if __name__ == "__main__":
    main()
