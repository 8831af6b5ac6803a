"""``tta edit``: change audio you already have with the text-to-audio model.

Three modes over :meth:`tta.pipelines.TTAPipeline.edit` (one sampler loop for all of them and for generation):

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
from pathlib import Path
from typing import Any

from tta.cli.common import (
    add_model_arguments,
    add_output_arguments,
    add_sampling_arguments,
    check_common_args,
    check_flag,
    check_writable,
    conditioning_kwargs,
    load_pipeline,
    output_folder,
    resolve_device,
    slugify,
    write_output,
)

MODES = {"style": "style transfer", "inpaint": "inpainting", "superres": "super-resolution"}


def register(subparsers) -> None:
    from tta.pipelines import SUPER_RESOLUTION_PROMPT

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("input", type=Path, metavar="IN", help="the audio to edit (wav/flac/ogg/mp3, 0.1-60 s)")
    common.add_argument("-o", "--output", default=None, help="a .wav file or a folder (default: outputs/)")
    add_sampling_arguments(common, steps_help="sampler steps at strength 1")
    add_model_arguments(common)
    add_output_arguments(common)

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
    from tta.pipelines import checks

    check_flag("--prompt", checks.check_prompts, args.prompt)
    check_flag("--strength", checks.check_unit, args.strength, "strength")
    check_common_args(args)
    kwargs: dict[str, Any] = {}
    if args.mode == "inpaint":
        feather = check_flag("--feather", checks.check_feather, args.feather)
        kwargs = {"region": EditRegion(ranges=tuple(parse_range(r) for r in args.ranges)), "feather_s": feather}
    if args.mode == "superres" and args.cutoff_hz is not None:
        kwargs = {"cutoff_hz": args.cutoff_hz}
    args.audio = load_edit_audio(args.input, None, SAMPLE_RATE)  # refuses non-audio, too long, too short
    region = kwargs.get("region", EditRegion(above_hz=kwargs.get("cutoff_hz")))
    region.check(len(args.audio) / SAMPLE_RATE, SAMPLE_RATE)
    return kwargs


def output_path(output: str | None, input_path: Path, mode: str) -> Path:
    """``output`` if it names a .wav, else ``<output or outputs/>/<input stem>_<mode>.wav``."""
    target = output_folder(output)
    if target.suffix.lower() == ".wav":
        return target
    return target / f"{slugify(input_path.stem)}_{mode}.wav"


def run(args: argparse.Namespace) -> int:
    from tta.audio.io import SAMPLE_RATE
    from tta.pipelines.checks import random_seed

    kwargs = check_args(args)
    path = output_path(args.output, args.input, args.mode)
    check_writable([path])
    args.device = resolve_device(args.device)
    pipe, index = load_pipeline(args)
    common = {
        "negative_prompt": args.negative,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "sampler": args.sampler,
        "seed": args.seed if args.seed is not None else random_seed(),
        "strength": args.strength,
        "progress": not args.no_progress,
        "peak_limit": args.peak_limit,
        "loudness": args.loudness,
        **conditioning_kwargs(args, index),
    }
    if args.mode == "superres":
        result = pipe.super_resolve(args.audio, args.prompt, sample_rate=SAMPLE_RATE, **kwargs, **common)
    else:
        result = pipe.edit(args.audio, args.prompt, sample_rate=SAMPLE_RATE, **kwargs, **common)
    sidecar = {
        **result.settings_for(0),
        "mode": args.mode,
        "input": str(args.input.resolve()),
        "input_sha256": hashlib.sha256(args.input.read_bytes()).hexdigest(),
    }
    write_output(path, result.audios[0], pipe.sample_rate, sidecar)
    print(path)
    return 0
