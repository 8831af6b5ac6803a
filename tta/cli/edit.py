"""``tta edit``: change audio you already have with the text-to-audio model.

Three modes over :meth:`tta.pipeline.TTAPipeline.edit` (one sampler loop for all of them and for generation):

* ``tta edit style IN --prompt TEXT [--strength 0.6]``: style transfer; the input noised to ``--strength`` and
  denoised under the prompt (0 = the input's VAE + vocoder round trip, 1 = a new sound of the input's length).
* ``tta edit inpaint IN --prompt TEXT --range 1.0:2.5 [--range ...]``: regenerate the time ranges (seconds),
  keep the rest, fading in over ``--feather`` seconds at the borders.
* ``tta edit superres IN [--cutoff-hz 4000]``: bandwidth extension; keep the mel bins below the cut-off (detected
  from the input's spectrum by default) and generate the ones above.

The input (wav/flac/ogg/mp3, any rate, 0.1-60 s) is checked before the model loads. Each output WAV (16 kHz)
gets a JSON sidecar with the settings, the input's path and SHA-256, and the seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from tta.cli.generate import (
    add_compose_argument,
    add_peak_limit_arguments,
    add_retrieval_arguments,
    check_peak_limit_arg,
    check_retrieval_args,
)
from tta.errors import InputError

MODES = {"style": "style transfer", "inpaint": "inpainting", "superres": "super-resolution"}


def register(subparsers) -> None:
    from tta.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS, SUPER_RESOLUTION_PROMPT
    from tta.sampling.schedulers import DEFAULT_SAMPLER, SAMPLERS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("input", type=Path, metavar="IN", help="the audio to edit (wav/flac/ogg/mp3, 0.1-60 s)")
    common.add_argument("-o", "--output", default=None, help="a .wav file or a folder (default: outputs/)")
    common.add_argument("--negative", default=None, help="negative prompt")
    common.add_argument(
        "--steps", type=int, default=None, help=f"sampler steps at strength 1 (the model's, else {DEFAULT_STEPS})"
    )
    common.add_argument(
        "--guidance", type=float, default=None, help=f"guidance scale (the model's, else {DEFAULT_GUIDANCE})"
    )
    common.add_argument("--seed", type=int, default=None, help="seed (default: random, recorded in the sidecar)")
    common.add_argument("--sampler", default=DEFAULT_SAMPLER, help=f"one of {', '.join(SAMPLERS)} (%(default)s)")
    common.add_argument("--model", default=None, help="a tta or diffusers AudioLDM folder (default: checkpoints/)")
    common.add_argument("--device", default="cpu", help="torch device, or auto (default %(default)s)")
    common.add_argument(
        "--no-prior", action="store_true", help="condition on the raw CLAP text embedding (skip the model's prior/)"
    )
    add_retrieval_arguments(common)
    add_compose_argument(common)
    add_peak_limit_arguments(common)
    common.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    p = subparsers.add_parser(
        "edit",
        help="edit audio: style transfer, inpainting, super-resolution",
        description="Edit an audio file with the model: style transfer, inpainting of time ranges, or "
        "super-resolution (bandwidth extension). Writes a 16 kHz WAV and a JSON sidecar.",
        epilog="examples:\n"
        "  tta edit style dog.wav --prompt 'a cat meows' --strength 0.6 -o cat.wav\n"
        "  tta edit inpaint street.wav --prompt 'a car horn' --range 1.0:2.5 --range 4:5\n"
        "  tta edit superres phone_call.wav --cutoff-hz 4000\n"
        "MODE --help lists a mode's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    modes = p.add_subparsers(dest="mode", metavar="MODE", required=True, parser_class=type(p))

    style = modes.add_parser("style", parents=[common], help="re-imagine the whole input under a prompt")
    style.add_argument("--prompt", required=True, help="what the result should sound like")
    style.add_argument(
        "--strength", type=float, default=0.6, help="0 keeps the input, 1 ignores it (default %(default)s)"
    )

    inpaint = modes.add_parser("inpaint", parents=[common], help="regenerate time ranges, keep the rest")
    inpaint.add_argument("--prompt", required=True, help="what the regenerated ranges should sound like")
    inpaint.add_argument(
        "--range",
        dest="ranges",
        action="append",
        required=True,
        metavar="START:END",
        help="seconds to regenerate, e.g. 1.0:2.5 (repeat for several)",
    )
    inpaint.add_argument("--strength", type=float, default=1.0, help="noise level of the ranges (%(default)s)")
    inpaint.add_argument("--feather", type=float, default=0.05, help="fade at range borders, s (%(default)s)")

    superres = modes.add_parser("superres", parents=[common], help="fill the missing high band of the input")
    superres.add_argument("--prompt", default=SUPER_RESOLUTION_PROMPT, help="description (default: %(default)r)")
    superres.add_argument(
        "--cutoff-hz", type=float, default=None, help="keep what is below (default: detected from the input)"
    )
    superres.add_argument("--strength", type=float, default=1.0, help="noise level of the high band (%(default)s)")
    for sub in (style, inpaint, superres):
        sub.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> dict[str, Any]:
    """Check every argument (and read the input) before any model loads; returns the edit's keyword arguments."""
    from tta.audio.io import SAMPLE_RATE
    from tta.editing import EditRegion, load_edit_audio, parse_range
    from tta.pipeline import MAX_STEPS
    from tta.sampling.schedulers import sampler_name

    if not args.prompt.strip():
        raise InputError("empty or whitespace prompt")
    if not 0.0 <= args.strength <= 1.0:
        raise InputError(f"--strength must be between 0 and 1, got {args.strength}")
    if args.steps is not None and not 1 <= args.steps <= MAX_STEPS:
        raise InputError(f"--steps must be between 1 and {MAX_STEPS}, got {args.steps}")
    if args.guidance is not None and not math.isfinite(args.guidance):
        raise InputError(f"--guidance must be a finite number, got {args.guidance}")
    if args.seed is not None and not 0 <= args.seed < 2**62:
        raise InputError(f"--seed must be in [0, 2**62), got {args.seed}")
    check_peak_limit_arg(args)
    args.sampler = sampler_name(args.sampler)
    kwargs: dict[str, Any] = {}
    if args.mode == "inpaint":
        if not math.isfinite(args.feather) or args.feather < 0:
            raise InputError(f"--feather must be >= 0 seconds, got {args.feather}")
        kwargs = {"region": EditRegion(ranges=tuple(parse_range(r) for r in args.ranges)), "feather_s": args.feather}
    if args.mode == "superres" and args.cutoff_hz is not None:
        kwargs = {"cutoff_hz": args.cutoff_hz}
    args.audio = load_edit_audio(args.input, None, SAMPLE_RATE)  # refuses non-audio, too long, too short
    region = kwargs.get("region", EditRegion(above_hz=kwargs.get("cutoff_hz")))
    region.check(len(args.audio) / SAMPLE_RATE, SAMPLE_RATE)
    return kwargs


def output_path(output: str | None, input_path: Path, mode: str) -> Path:
    """``output`` if it names a .wav, else ``<output or outputs/>/<input stem>_<mode>.wav``."""
    from tta.cli.generate import DEFAULT_OUTPUT, slugify

    target = Path(output if output is not None else DEFAULT_OUTPUT).expanduser()
    if target.suffix.lower() == ".wav":
        return target
    if target.exists() and not target.is_dir():
        raise InputError(f"-o {target} exists and is not a folder")
    return target / f"{slugify(input_path.stem)}_{mode}.wav"


def run(args: argparse.Namespace) -> int:
    import secrets

    from tta.audio.io import SAMPLE_RATE
    from tta.cli.generate import check_writable, resolve_device

    kwargs = check_args(args)
    check_retrieval_args(args)
    path = output_path(args.output, args.input, args.mode)
    check_writable([path])
    args.device = resolve_device(args.device)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)

    from transformers.utils import logging as transformers_logging

    from tta.pipeline import TTAPipeline

    transformers_logging.disable_progress_bar()
    pipe = TTAPipeline.from_pretrained(args.model, device=args.device)
    if args.no_prior:
        pipe.prior = None
    if args.retrieval is not None:
        pipe.set_retrieval(args.retrieval, args.top_k)
    args.steps = pipe.default_steps if args.steps is None else args.steps  # the sidecar records what ran
    args.guidance = pipe.default_guidance if args.guidance is None else args.guidance
    common = {
        "negative_prompt": args.negative,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "sampler": args.sampler,
        "seed": seed,
        "strength": args.strength,
        "progress": not args.no_progress,
        "peak_limit": args.peak_limit,
        "compose": args.compose,
    }
    audio, sr = args.audio, SAMPLE_RATE
    if args.mode == "superres":
        result = pipe.super_resolve(audio, args.prompt, sample_rate=sr, **kwargs, **common)
    else:
        result = pipe.edit(audio, args.prompt, sample_rate=sr, **kwargs, **common)
    region = result.region
    sidecar = {
        "mode": args.mode,
        "input": str(args.input.resolve()),
        "input_sha256": hashlib.sha256(args.input.read_bytes()).hexdigest(),
        "prompt": args.prompt,
        "negative_prompt": args.negative,
        "strength": args.strength,
        "ranges": [list(r) for r in region.ranges] if region is not None and region.ranges else None,
        "cutoff_hz": region.above_hz if region is not None else None,
        "feather": getattr(args, "feather", None),
        "seed": result.seeds[0],
        "model": pipe.name_or_path,
        "model_hash": pipe.model_hash,
        "sampler": args.sampler,
        "steps": args.steps,
        "guidance": args.guidance,
        "prior": pipe.prior is not None,
        "compose": args.compose,
        "sources": result.sources[0],
        "retrieval": str(Path(args.retrieval).resolve()) if pipe.retrieval is not None else None,
        "top_k": pipe.retrieval_top_k,
        "retrieved": result.retrieved[0] if result.retrieved is not None else None,
        "peak_limit": args.peak_limit,
        "peak_gain": float(result.peak_gains[0]),
        "sample_rate": pipe.sample_rate,
        "file": path.name,
        "num_samples": int(result.audios.shape[1]),
    }
    write_output(path, result.audios[0], pipe.sample_rate, sidecar)
    print(path)
    return 0


def write_output(path: Path, audio, sample_rate: int, sidecar: dict[str, Any]) -> None:
    """The WAV and its JSON sidecar, each written atomically."""
    from tta.audio.io import save_audio, write_atomic
    from tta.cli.generate import sidecar_path

    save_audio(path, audio, sample_rate)
    write_atomic(sidecar_path(path), json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n")
