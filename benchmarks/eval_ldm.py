"""Guidance-scale and step-count sweeps of a text-to-audio model: text alignment and FAD side by side.

Every row generates the same prompts with the same seeds (one per class, our own wording, and the two-source
prompts of ``tta.evaluation.generation``) and scores them as ``tta train ldm --eval-only`` does; the real clips
are embedded once. Prints a markdown table and, with ``--json``, writes every figure.

    .venv/bin/python benchmarks/eval_ldm.py                                    # the shipped model
    .venv/bin/python benchmarks/eval_ldm.py --guidance 1 2.5 4 --steps 10 20 --seconds 5
    .venv/bin/python benchmarks/eval_ldm.py --guidance 4 --steps 20 --candidates 1 4   # CLAP re-ranking
    .venv/bin/python benchmarks/eval_ldm.py --guidance 6 --prior on off --prompt-set tuning  # the retrieval prior
    .venv/bin/python benchmarks/eval_ldm.py --guidance 6 --compose mix guidance off --pairs-only   # two-sound prompts
    .venv/bin/python benchmarks/eval_ldm.py --guidance 6 --compose mix --mix-gain-db 0 -6 -12 --pairs-only

With ``--candidates N`` the pipeline keeps the best of N by its CLAP, which for the shipped model also judges:
such rows measure the re-ranking feature, not the UNet alone. The first line gives the judge's top-1 (and top-5) on the
real single-source clips of the split, the ceiling of the single-source column.

``--judge aisfx`` ranks the classes with the aisfx backend's linear probe (an SFX-trained CNN that never
conditioned the model, with a probe trained on the corpus train split: ``benchmarks/aisfx_probe.py``) instead
of our CLAP; FAD stays in our CLAP's embedding space.

    .venv/bin/python benchmarks/eval_ldm.py --guidance 6 --steps 12 --judge aisfx clap --threads 2

``--lora ADAPTER --lora-scale 1 0`` runs every row with a LoRA adapter (``tta finetune``) at each scale: what a
fine-tune costs the corpus classes.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch

from tta.data.captions import CLASSES
from tta.data.prompts import PARAPHRASES, TUNING_TWO_SOURCE_PROMPTS, TWO_SOURCE_PROMPTS
from tta.evaluation.clap_zero_shot import embed_clips, load_split
from tta.evaluation.frechet import frechet_distance
from tta.evaluation.generation import (
    alignment,
    generate,
    real_clip_topk,
    single_source_prompts,
)
from tta.models.clap import load_clap
from tta.models.vocoder import set_vocoder_refine
from tta.paths import cache_dir
from tta.pipelines import TTAPipeline
from tta.sampling.mixing import DEFAULT_MIX_GAIN_DB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the shipped one)")
    parser.add_argument("--corpus", default=str(cache_dir() / "corpus"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.5, 4.0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--candidates", type=int, nargs="+", default=[1], help="CLAP re-ranking: best of N")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--prior",
        nargs="+",
        default=["on"],
        choices=["on", "off"],
        help="with and/or without the model's retrieval prior (prior/), e.g. --prior on off",
    )
    parser.add_argument(
        "--compose",
        nargs="+",
        default=["auto"],
        choices=["auto", "mix", "guidance", "off"],
        help="prompts naming several sounds: the model's choice (auto: mixed when its prior allows), each sound "
        "sampled alone and mixed (mix), composed guidance (guidance), both forced on with the prior composing up to "
        "two sounds whatever prior/config.json says; or every prompt whole (off)",
    )
    parser.add_argument(
        "--mix-gain-db",
        type=float,
        nargs="+",
        default=[DEFAULT_MIX_GAIN_DB],
        help="level of a mixed prompt's later sounds against the first (dB; mix and auto rows)",
    )
    parser.add_argument("--pairs-only", action="store_true", help="only the two-source prompts (no FAD, no single)")
    parser.add_argument(
        "--prompt-set",
        default="report",
        choices=["report", "tuning"],
        help="report: the prompts the model card reports (each class's first description and TWO_SOURCE_PROMPTS, "
        "seeds from --seed); tuning: each class's second description and TUNING_TWO_SOURCE_PROMPTS, seeds from "
        "--seed + 500 (for choosing settings without touching the reported prompts)",
    )
    parser.add_argument("--retrieval", default=None, metavar="INDEX", help="a retrieval index (tta index build)")
    parser.add_argument(
        "--judge",
        nargs="+",
        default=["clap"],
        choices=["clap", "aisfx"],
        help="who ranks the classes: our CLAP (zero-shot) and/or the aisfx probe; each row is judged by each",
    )
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--lora", default=None, metavar="ADAPTER", help="a LoRA adapter (tta finetune) to load")
    parser.add_argument("--lora-scale", type=float, nargs="+", default=[1.0], help="its scales, one row set each")
    parser.add_argument(
        "--student",
        default=None,
        metavar="DIR",
        help="a distilled student (`tta train distill`, e.g. checkpoints/lcm) merged into --model's UNet; "
        "sampler lcm (give --guidance 1: the teacher's guidance is folded in)",
    )
    parser.add_argument(
        "--vocoder-refine",
        default="model",
        choices=["model", "off"],
        help="the ISTFT vocoder's refinement to its mel: as the model (or student.json) says, or off",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.student:
        from tta.distill.pipeline import StudentPipeline

        refine = None if args.vocoder_refine == "model" else False
        pipe = StudentPipeline.from_pretrained(args.model, student=args.student, vocoder_refine=refine)
    else:
        pipe = TTAPipeline.from_pretrained(args.model)
        if args.vocoder_refine == "off":
            set_vocoder_refine(pipe.vocoder, False)
    prior = pipe.prior
    clap = load_clap()
    classes = list(CLASSES)
    single = single_source_prompts(classes)
    seed = args.seed
    pairs = list(TWO_SOURCE_PROMPTS)
    if args.prompt_set == "tuning":
        single = [(PARAPHRASES[c][1], c) for _, c in single]
        pairs, seed = list(TUNING_TWO_SOURCE_PROMPTS), args.seed + 500
    pair_prompts = [p for p, _, _ in pairs]
    items = load_split(args.corpus, args.split, max_seconds=10.0)
    ref_emb = embed_clips(clap, [it["audio"] for it in items]).numpy()
    judges = {name: clap if name == "clap" else _aisfx_judge() for name in args.judge}
    for name, judge in judges.items():
        top1, top5 = real_clip_topk(judge, items, classes)
        print(f"real {args.split} clips judged by {name}: single-source top-1 {top1:.1%}, top-5 {top5:.1%}")
    rows = []
    print(
        "| prior | compose | mix dB | guidance | steps | candidates | judge | single-source top-1 | top-5 "
        "| two-source both in top 5 | FAD | s per clip |"
    )
    print("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    max_sources = prior.max_sources if prior is not None else 1
    scales = args.lora_scale if args.lora else [None]
    settings = itertools.product(
        scales, args.prior, args.compose, args.mix_gain_db, args.guidance, args.steps, args.candidates
    )
    for lora_scale, use, compose, gain_db, guidance, steps, n in settings:
        if args.lora and [e["scale"] for e in pipe.model_settings().get("lora", [])] != [lora_scale]:
            pipe.unload_lora()
            pipe.load_lora(args.lora, lora_scale)
        if use == "on" and prior is None:
            print("(no prior/ in the model folder: the 'on' rows run without one)")
        pipe.prior = prior if use == "on" else None
        if prior is not None:
            prior.max_sources = max(2, max_sources) if compose in ("mix", "guidance") else max_sources
        kw = dict(num_candidates=n, compose=False if compose == "off" else None, mix_gain_db=gain_db)
        kw["compose_mode"] = "guidance" if compose == "guidance" else "mix"
        kw["retrieval"] = args.retrieval  # the model's prior extended by the index's recordings
        single_rows, audio, fad = [] if args.pairs_only else single, [], float("nan")
        if single_rows:
            audio, per_clip = generate(pipe, [p for p, _ in single], args.seconds, steps, guidance, seed, **kw)
            fad = frechet_distance(embed_clips(clap, [torch.as_tensor(a) for a in audio]).numpy(), ref_emb)
        pair_audio, pair_s = generate(pipe, pair_prompts, args.seconds, steps, guidance, seed + 10_000, **kw)
        per_clip = per_clip if single_rows else pair_s
        for name, judge in judges.items():
            out = alignment(judge, single_rows, audio, pairs, pair_audio, classes)
            row = {"prior": pipe.prior is not None, "compose": compose, "mix_gain_db": gain_db, "guidance": guidance}
            row.update(steps=steps, candidates=n, judge=name, lora_scale=lora_scale)
            rows.append({**row, "fad": fad, "seconds_per_clip": per_clip, **out})
            pair_cell = f"{out['pair_both_top5']:.0%}"
            single_cells = "- | -" if args.pairs_only else f"{out['single_top1']:.1%} | {out['single_top5']:.1%}"
            print(
                f"| {'on' if row['prior'] else 'off'}{'' if lora_scale is None else f' (LoRA {lora_scale:g})'} | {compose} | {gain_db:g} | {guidance:g} | {steps} | {n} | "
                f"{name} | {single_cells} | {pair_cell} | {fad:.3f} | {per_clip:.2f} |",
                flush=True,
            )
    if prior is not None:
        prior.max_sources = max_sources
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


def _aisfx_judge():
    from tta.evaluation.backends.aisfx import AisfxBackend

    judge = AisfxBackend()
    if judge.probe is None:
        raise SystemExit("--judge aisfx needs the linear probe: run benchmarks/aisfx_probe.py first")
    return judge


if __name__ == "__main__":
    main()
