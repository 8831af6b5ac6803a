"""Speed of the default model at its default settings: wall time and real-time factor for 10 s of audio.

Loads the shipped model (``checkpoints/``). Before a UNet is shipped, ``--random-unet`` builds one from
``configs/model/unet_small.yaml`` with random weights next to the shipped VAE, vocoder and CLAP (speed does not
depend on the weights). Prints the end-to-end time and the split per stage (CLAP text, UNet, VAE decoder,
vocoder) for each thread count, median of ``--repeats`` runs after one warm-up, for a prompt naming one sound and
one naming two (split into two sounds when the model's prior allows it), the latter in each ``--compose-modes``:
mixed (each sound generated alone and summed: four UNet rows a step and two decodes) and composed guidance (three
UNet rows a step, one decode).

    .venv/bin/python benchmarks/bench_default.py                 # 10 s, default steps/guidance/sampler, 1 and 2 threads
    .venv/bin/python benchmarks/bench_default.py --steps 10 --threads 2

With a distilled student (``tta train distill``; ``--student checkpoints/lcm``), the same prompts are also timed
with the student (its LCM sampler, no guidance row) at each of ``--student-steps``, in the same run and on the
same thread counts, and a last table gives each setting's time against the teacher's:

    .venv/bin/python benchmarks/bench_default.py --student checkpoints/lcm --student-steps 1 2 4 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from tta.pipelines import TTAPipeline

RESULTS: dict[tuple, float] = {}  # (threads, prompt, mode, steps, student) -> median wall seconds


def load(random_unet: bool) -> TTAPipeline:
    from tta.paths import default_model_dir

    folder = default_model_dir()
    if not random_unet:
        return TTAPipeline.from_pretrained()
    from omegaconf import OmegaConf

    from tta.loading import load_vae, load_vocoder
    from tta.models.clap import load_clap
    from tta.models.unet import build_unet
    from tta.paths import REPO_ROOT
    from tta.sampling.schedulers import AUDIOLDM_SCHEDULER

    cfg = OmegaConf.to_container(OmegaConf.load(REPO_ROOT / "configs" / "model" / "unet_small.yaml"))
    unet = build_unet(**cfg).eval()
    scheduler = {"_class_name": "DDIMScheduler", **AUDIOLDM_SCHEDULER, "prediction_type": "v_prediction"}
    pipe = TTAPipeline(unet, load_vae(folder), load_vocoder(folder), load_clap(folder / "clap"), scheduler)
    with tempfile.TemporaryDirectory() as tmp:  # through a folder, as users get it (fast-inference settings)
        pipe.save_pretrained(Path(tmp) / "model")
        return TTAPipeline.from_pretrained(Path(tmp) / "model")


def timed(pipe: TTAPipeline) -> dict[str, float]:
    """Wrap the stages' calls (the CLAP's ``encode_text``) to accumulate their wall time."""
    totals: dict[str, float] = defaultdict(float)
    stages = (
        ("unet", pipe.unet, "forward"),
        ("vae", pipe.vae.decoder, "forward"),
        ("vocoder", pipe.vocoder, "forward"),
        ("clap", pipe.clap, "encode_text"),
    )
    for name, module, method in stages:
        forward = getattr(module, method)

        def wrapped(*a, _f=forward, _n=name, **k):
            t0 = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                totals[_n] += time.perf_counter() - t0

        setattr(module, method, wrapped)
    return totals


def timed_prompt(pipe, totals, prompt: str, mode: str, threads: int, args, kw: dict):
    """Time ``prompt`` (median of ``args.repeats``) with ``compose_mode=mode``; print a line; return an output."""
    walls, stages = [], defaultdict(list)
    for r in range(args.repeats):
        totals.clear()
        t0 = time.perf_counter()
        out = pipe(prompt, progress=False, seed=r, compose_mode=mode, **kw)
        walls.append(time.perf_counter() - t0)
        for k, v in totals.items():
            stages[k].append(v)
    wall = statistics.median(walls)
    RESULTS[(threads, prompt, mode, kw.get("num_inference_steps"), bool(getattr(pipe, "student_path", None)))] = wall
    split = "  ".join(f"{k} {statistics.median(v):.2f}s" for k, v in sorted(stages.items()))
    sounds = " + ".join(out.sources[0])
    how = f", {mode}" if len(out.sources[0]) > 1 else ""
    print(
        f"threads {threads}, {prompt!r} ({len(out.sources[0])} sound(s): {sounds}{how}): {wall:.2f} s wall, "
        f"real-time factor {wall / args.duration:.3f}  ({split})"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=None, help="default: the model's")
    parser.add_argument("--guidance", type=float, default=None, help="default: the model's")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--random-unet", action="store_true", help="a random UNet of the default size")
    parser.add_argument(
        "--prompts", nargs="+", default=["a cow mooing", "a dog barking in the rain"], help="prompts timed, each alone"
    )
    parser.add_argument("--compose-modes", nargs="+", default=["mix", "guidance"], choices=["mix", "guidance"])
    parser.add_argument("--student", default=None, metavar="DIR", help="also time this distilled student")
    parser.add_argument("--student-steps", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--student-vocoder-refine",
        default="student",
        choices=["student", "on", "off"],
        help="the student's vocoder refinement to the mel: as its student.json says, on, or off",
    )
    args = parser.parse_args()
    pipe = load(args.random_unet)
    student = None
    if args.student:
        from tta.distill.pipeline import StudentPipeline

        refine = {"student": None, "on": True, "off": False}[args.student_vocoder_refine]
        student = StudentPipeline.from_pretrained(pipe.name_or_path, student=args.student, vocoder_refine=refine)
    args.steps = pipe.default_steps if args.steps is None else args.steps
    args.guidance = pipe.default_guidance if args.guidance is None else args.guidance
    params = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    print(f"model: {pipe.name_or_path or 'random UNet + shipped parts'} (UNet {params:.1f} M parameters)")
    print(f"{args.duration:g} s of audio, {args.steps} steps, guidance {args.guidance}, default sampler")
    totals = timed(pipe)
    runs = [(pipe, totals, args.steps, args.guidance, args.compose_modes)]
    if student is not None:
        # the student has no guidance row: composed guidance averages its sounds' (guided) rows
        runs += [(student, timed(student), n, 1.0, args.compose_modes) for n in args.student_steps]
    for threads in args.threads:
        torch.set_num_threads(threads)
        for model, stage_totals, steps, guidance, modes in runs:
            if model is student:
                refine = "on" if student.vocoder_refine else "off"
                print(
                    f"student {args.student}: {steps} step(s), sampler lcm, no guidance row, vocoder refine {refine}"
                )
            kw = dict(audio_length_in_s=args.duration, num_inference_steps=steps, guidance_scale=guidance)
            model("warm up", progress=False, seed=0, **kw)
            for prompt in args.prompts:
                for mode in modes:
                    out = timed_prompt(model, stage_totals, prompt, mode, threads, args, kw)
                    if len(out.sources[0]) == 1:
                        break  # one sound: the mode changes nothing
    if student is not None:
        ratio_table(args)


def ratio_table(args) -> None:
    """Each student setting's wall time against the teacher's (same threads, prompt; mixed two-sound prompts)."""
    print(
        "\n| threads | prompt | teacher (s) | "
        + " | ".join(f"student {n} step(s) (s, x faster)" for n in args.student_steps)
        + " |"
    )
    print("|---:|---|---:|" + "---:|" * len(args.student_steps))
    for threads in args.threads:
        for prompt in args.prompts:
            base = RESULTS.get((threads, prompt, "mix", args.steps, False))
            if base is None:
                continue
            cells = []
            for n in args.student_steps:
                wall = RESULTS.get((threads, prompt, "mix", n, True))
                cells.append(f"{wall:.2f} ({base / wall:.1f}x)" if wall else "-")
            print(f"| {threads} | {prompt} | {base:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
