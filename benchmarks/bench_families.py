"""tta vs diffusers' AudioLDM2Pipeline on the same random AudioLDM 2-size weights, side by side, in one run.

Component shapes (random weights, nothing downloaded):

* UNet: AudioLDM 2's published ``audioldm2`` config (``model_channels`` 128, ``channel_mult`` [1, 2, 3, 5],
  ``num_res_blocks`` 2, ``attention_resolutions`` [8, 4, 2], ``num_head_channels`` 32, ``context_dim``
  [768, 1024], 8 latent channels) mapped the way diffusers' ``scripts/convert_original_audioldm2_to_diffusers.py``
  maps it (an extra self-attention layer, then a GPT-2 and a T5 cross-attention stream per block);
* text: the CLAP RoBERTa-base text tower + HTSAT audio tower (transformers' ``ClapConfig`` defaults, 512-d
  projection), FLAN-T5-large's encoder (d_model 1024, 24 layers, gated-GELU), GPT-2 base (768, 12 layers),
  8 generated tokens;
* VAE and HiFi-GAN: AudioLDM's (tta's ``build_vae`` / ``build_vocoder`` defaults, as AudioLDM 2 uses them).

Both pipelines get the same modules, DDIM scheduler config, steps, guidance, prompt and starting latents. Prints
each pipeline's wall time with a per-stage split (text conditioning, UNet loop, VAE decode, vocoder), the waveform
difference, the ratio, and (``--rss``) this process's peak resident memory after running tta alone.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_families.py --duration 5.12 --steps 10 --threads 2
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_families.py --only tta --rss     # tta's peak RSS
"""

from __future__ import annotations

import argparse
import copy
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import PROMPT, StageTimer, build_tokenizer  # noqa: E402

from tta.sampling.schedulers import AUDIOLDM_SCHEDULER  # noqa: E402

T5_LARGE = dict(d_model=1024, d_ff=2816, d_kv=64, num_heads=16, num_layers=24, feed_forward_proj="gated-gelu")
T5_WORDS = "a dog barks while rain falls on tin roof birds sing people talk car engine thunder wind piano".split()


def build_t5_tokenizer():
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [("\u2581" + w, -1.0) for w in T5_WORDS]
    vocab += [(c, -10.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def build_modules(tokenizer):
    """Random AudioLDM 2-size modules (see the module docstring)."""
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import (
        AudioLDM2ProjectionModel,
        AudioLDM2UNet2DConditionModel,
    )
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        GPT2Config,
        GPT2LMHeadModel,
        T5Config,
        T5EncoderModel,
    )

    from tta.models.vae import build_vae
    from tta.models.vocoder import build_vocoder

    torch.manual_seed(0)
    t5_tok = build_t5_tokenizer()
    gpt = GPT2LMHeadModel(GPT2Config(n_embd=768, n_layer=12, n_head=12)).eval()
    gpt.config.max_new_tokens = 8
    return dict(
        text_encoder=ClapModel(ClapConfig(projection_dim=512)).eval(),
        tokenizer=tokenizer,
        feature_extractor=ClapFeatureExtractor(),
        text_encoder_2=T5EncoderModel(T5Config(vocab_size=32128, **T5_LARGE)).eval(),
        tokenizer_2=t5_tok,
        projection_model=AudioLDM2ProjectionModel(512, 1024, 768).eval(),
        language_model=gpt,
        unet=AudioLDM2UNet2DConditionModel(
            in_channels=8,
            out_channels=8,
            block_out_channels=(128, 256, 384, 640),
            layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=[[None, 768, 1024]] * 4,
            attention_head_dim=(4, 8, 12, 20),
        ).eval(),
        vae=build_vae().eval(),
        vocoder=build_vocoder().eval(),
    )


def tta_pipeline(m):
    """A TTAPipeline over the same modules (a copy of the VAE: tta switches it to channels-last)."""
    from tta.families.audioldm2 import AudioLDM2TextEncoder, AudioLDM2UNet
    from tta.pipelines import TTAPipeline

    encoder = AudioLDM2TextEncoder(
        m["text_encoder"], m["tokenizer"], m["text_encoder_2"], m["tokenizer_2"], m["projection_model"],
        m["language_model"].transformer, 8,
    ).eval()  # fmt: skip
    unet = AudioLDM2UNet(m["unet"], encoder.packer).eval()
    pipe = TTAPipeline(
        unet, copy.deepcopy(m["vae"]), m["vocoder"], encoder, {"_class_name": "DDIMScheduler", **AUDIOLDM_SCHEDULER}
    )
    return pipe.enable_fast_inference()


def timed(stages, call):
    timer = StageTimer()
    for obj, method, label in stages:
        timer.wrap(obj, method, label)
    start = time.perf_counter()
    try:
        out = call()
    finally:
        total = time.perf_counter() - start
        for obj, method, _ in stages:
            delattr(obj, method)
    return out, total, timer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=5.12)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--guidance", type=float, default=3.5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", choices=["both", "tta", "diffusers"], default="both")
    p.add_argument("--order", choices=["diffusers-first", "tta-first"], default="diffusers-first")
    p.add_argument("--rss", action="store_true", help="print this process's peak RSS at the end")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import tempfile

    from diffusers import AudioLDM2Pipeline, DDIMScheduler

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(tmp)
    start = time.perf_counter()
    m = build_modules(tokenizer)
    n_params = sum(x.numel() for k, v in m.items() if isinstance(v, torch.nn.Module) for x in v.parameters()) / 1e6
    unet_params = sum(x.numel() for x in m["unet"].parameters()) / 1e6
    print(f"AudioLDM 2-size random model: {n_params:.0f} M parameters (UNet {unet_params:.0f} M), built in "
          f"{time.perf_counter() - start:.0f} s; {args.duration:g} s audio, DDIM {args.steps} steps, guidance "
          f"{args.guidance}, fp32, {torch.get_num_threads()} threads")  # fmt: skip
    ours = tta_pipeline(m)
    latents = torch.randn((1, *ours.layout(args.duration).latent_shape), generator=torch.Generator().manual_seed(0))
    common = dict(audio_length_in_s=args.duration, num_inference_steps=args.steps, guidance_scale=args.guidance)
    runs = {}
    if args.only in ("both", "diffusers"):
        ref = AudioLDM2Pipeline(scheduler=DDIMScheduler(**AUDIOLDM_SCHEDULER), **m)
        ref.set_progress_bar_config(disable=True)
        stages = [(ref, "encode_prompt", "text"), (ref.unet, "forward", "unet"), (ref.vae, "decode", "vae"),
                  (ref.vocoder, "forward", "vocoder")]  # fmt: skip
        runs["diffusers"] = lambda: timed(stages, lambda: ref(PROMPT, latents=latents.clone(), **common).audios)
    if args.only in ("both", "tta"):
        ours_stages = [(ours.clap, "encode_text", "text"), (ours.unet, "forward", "unet"),
                       (ours.vae, "decode", "vae"), (ours.vocoder, "forward", "vocoder")]  # fmt: skip
        call = lambda: ours(PROMPT, sampler="ddim", latents=latents.clone(), progress=False, **common).audios  # noqa: E731
        runs["tta"] = lambda: timed(ours_stages, call)
    order = sorted(runs, reverse=args.order == "tta-first")  # "diffusers" < "tta"
    results = {name: runs[name]() for name in order}
    for name, (_, total, timer) in results.items():
        print(f"{name:>10}: {total:6.1f} s  ({timer.report()})")
    if len(results) == 2:
        a, b = results["tta"][0], results["diffusers"][0]
        n = min(a.shape[-1], b.shape[-1])
        diff = float(np.abs(a[..., :n] - b[..., :n]).max())
        print(f"waveform max abs difference tta vs diffusers: {diff:.2e}")
        print(f"speed-up tta / diffusers (both fp32): {results['diffusers'][1] / results['tta'][1]:.2f}x")
    if args.rss:
        print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
