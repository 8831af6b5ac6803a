"""What ``tta generate`` and ``tta edit`` (and other sub-commands) share: the flags over the pipeline's
arguments, checking them with the core's own checks (:mod:`tta.pipelines.checks`) before a model loads, the
output paths, loading the pipeline, and writing a WAV with its sidecar."""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tta.errors import InputError

DEFAULT_OUTPUT = "outputs"


# ---------------------------------------------------------------------------------------------- flags


def add_sampling_arguments(p: argparse.ArgumentParser, steps_help: str = "sampler steps") -> None:
    """``--negative --steps --guidance --seed --sampler``."""
    from tta.pipelines.checks import DEFAULT_GUIDANCE, DEFAULT_STEPS, MAX_STEPS
    from tta.sampling.schedulers import DEFAULT_SAMPLER, SAMPLERS

    p.add_argument("--negative", default=None, help="negative prompt (steer away from it)")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"{steps_help}, 1-{MAX_STEPS} (default: the model's, else {DEFAULT_STEPS})",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        help=f"guidance scale, 0-100 (default: the model's, else {DEFAULT_GUIDANCE})",
    )
    p.add_argument("--seed", type=int, default=None, help="base seed (default: random, recorded in the sidecars)")
    p.add_argument(
        "--sampler",
        default=None,
        help=f"one of {', '.join(SAMPLERS)} (default {DEFAULT_SAMPLER}; lcm with --student)",
    )


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--model --device --no-prior --retrieval --top-k --no-compose``."""
    p.add_argument("--model", default=None, help="a tta or diffusers AudioLDM model folder (default: checkpoints/)")
    p.add_argument(
        "--device", default="cpu", help="torch device, or auto (this process's GPU if any) (default %(default)s)"
    )
    p.add_argument(
        "--student",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="merge a distilled few-step student (`tta train distill`) into the model's UNet: DIR, or without DIR "
        "the model's own lcm/; its defaults: sampler lcm, its steps, guidance 1 (folded in)",
    )
    p.add_argument(
        "--no-prior",
        action="store_true",
        help="condition on the raw CLAP text embedding even if the model has a retrieval prior (prior/)",
    )
    p.add_argument(
        "--retrieval",
        default=None,
        metavar="INDEX",
        help="draw on the recordings in INDEX (`tta index build`): a retrieval-conditioned model attends to each "
        "prompt's nearest ones (the sidecar lists them), and the model's prior searches them beside its own bank",
    )
    p.add_argument(
        "--top-k", type=int, default=None, help="with --retrieval: neighbours per prompt (default: the model's)"
    )
    p.add_argument(
        "--no-compose",
        dest="compose",
        action="store_const",
        const=False,
        default=None,
        help="condition a prompt that names several sounds on it whole, not on each sound (default: split into "
        "sounds when the model's prior allows it; the sidecar lists the sounds used)",
    )
    p.add_argument(
        "--engine",
        default="torch",
        choices=["torch", "onnx", "openvino", "auto"],
        help="run the UNet, VAE decoder and vocoder in torch (default; the pinned outputs), ONNX Runtime or "
        "OpenVINO (exported once per model, cached; float32 CPU; pip install 'tta[engine]'), or auto (the fastest "
        "installed one that matches torch, else torch)",
    )


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """``--peak-limit / --no-peak-limit --loudness --no-progress``."""
    from tta.audio.limiter import DEFAULT_PEAK_LIMIT

    p.add_argument(
        "--peak-limit",
        type=float,
        default=DEFAULT_PEAK_LIMIT,
        help="scale a waveform whose peak exceeds this (0-1] down to it, so the WAV does not clip "
        "(default %(default)s; the gain is recorded in the sidecar)",
    )
    p.add_argument(
        "--no-peak-limit",
        dest="peak_limit",
        action="store_const",
        const=None,
        help="write the decoder's output as it is (samples past full scale are clipped by the WAV writer)",
    )
    p.add_argument(
        "--loudness",
        type=float,
        default=None,
        metavar="LUFS",
        help="normalise each output to this integrated loudness (ITU-R BS.1770, e.g. -23 for EBU R 128, -14 for "
        "streaming), true peak kept under --peak-limit; the sidecar records the measured loudness and the gain",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


# ---------------------------------------------------------------------------------------------- checks


def check_flag(flag: str, check: Callable[..., Any], value: Any, *args: Any) -> Any:
    """``check(value, *args)`` from :mod:`tta.pipelines.checks`, its error prefixed with the flag's name."""
    try:
        return check(value, *args)
    except InputError as err:
        raise InputError(f"{flag}: {err}") from err


def check_common_args(args: argparse.Namespace) -> None:
    """The sampling, model and output flags, by the core's checks (before any model loads)."""
    from tta.pipelines import checks
    from tta.sampling.schedulers import sampler_name

    if args.steps is not None:
        check_flag("--steps", checks.check_steps, args.steps)
    if args.guidance is not None:
        args.guidance = check_flag("--guidance", checks.check_guidance, args.guidance)
    if args.seed is not None:
        check_flag("--seed", checks.check_seed, args.seed)
    args.peak_limit = check_flag("--peak-limit", checks.check_peak_limit, args.peak_limit)
    args.loudness = check_flag("--loudness", checks.check_loudness, args.loudness)
    if args.top_k is not None and args.retrieval is None:
        raise InputError("--top-k needs --retrieval INDEX")
    check_flag("--top-k", checks.check_top_k, args.top_k)
    if args.sampler is not None:  # None: the model's own (a --student's is lcm)
        args.sampler = check_flag("--sampler", sampler_name, args.sampler)


def slugify(text: str, max_len: int = 48) -> str:
    """A file-name-safe slug of a prompt: lower case, ``[a-z0-9_]`` only."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:max_len].rstrip("_") or "audio"


def output_folder(output: str | None) -> Path:
    """``-o``'s target (default ``outputs/``); an existing non-folder that is not a .wav is refused."""
    target = Path(output if output is not None else DEFAULT_OUTPUT).expanduser()
    if target.suffix.lower() != ".wav" and target.exists() and not target.is_dir():
        raise InputError(f"-o {target} exists and is not a folder")
    return target


def check_writable(paths: list[Path]) -> None:
    """Fail now, before any generation, if a folder cannot be created or written."""
    for folder in sorted({p.parent for p in paths}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tta-write-test.", dir=folder)
            os.close(fd)
            os.unlink(tmp)
        except OSError as err:
            raise InputError(f"cannot write to output folder {folder}: {err.strerror or err}") from err
    for path in paths:
        if path.is_dir():
            raise InputError(f"output path {path} is a folder")


def resolve_device(device: str, environ=os.environ) -> str:
    """``auto``: ``cuda:<LOCAL_RANK>`` when CUDA is available (one GPU per launched process), else cpu."""
    if device != "auto":
        return device
    import torch

    return f"cuda:{int(environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"


# ---------------------------------------------------------------------------------------------- model


def load_pipeline(args: argparse.Namespace, dtype: str = "float32"):
    """The pipeline of ``--model`` on ``--device`` (and ``--clap`` as its re-ranker), and the retrieval index of
    ``--retrieval`` loaded once (None without one)."""
    import torch
    from transformers.utils import logging as transformers_logging

    from tta.pipelines import TTAPipeline

    transformers_logging.disable_progress_bar()  # one progress bar: the sampler's
    if getattr(args, "student", None) is not None:
        from tta.distill.pipeline import StudentPipeline

        student = args.student or None
        pipe = StudentPipeline.from_pretrained(args.model, args.device, getattr(torch, dtype), student=student)
    else:
        pipe = TTAPipeline.from_pretrained(args.model, device=args.device, torch_dtype=getattr(torch, dtype))
    if getattr(args, "engine", "torch") != "torch":
        pipe.enable_engine(args.engine)
    if getattr(args, "stream_decode", None) is not None:
        pipe.enable_streaming_decode(args.stream_decode)
    if getattr(args, "winograd_decode", False):
        pipe.enable_winograd_decode()
    if getattr(args, "clap", None) is not None:
        from tta.models.clap import load_clap

        pipe.reranker = load_clap(args.clap, device=args.device)
    index = None
    if args.retrieval is not None:
        from tta.retrieval import RetrievalIndex

        index = RetrievalIndex.load(args.retrieval)
    return pipe, index


def conditioning_kwargs(args: argparse.Namespace, index) -> dict[str, Any]:
    """The per-call conditioning arguments of the flags."""
    return {"retrieval": index, "top_k": args.top_k, "use_prior": not args.no_prior, "compose": args.compose}


# ---------------------------------------------------------------------------------------------- files


def sidecar_path(wav: Path) -> Path:
    return wav.with_suffix(".json")


def write_output(path: Path, audio, sample_rate: int, sidecar: dict[str, Any]) -> None:
    """The WAV and its JSON sidecar (with the file's name and length), each written atomically."""
    from tta.audio.io import save_audio, write_atomic

    sidecar = {**sidecar, "file": path.name, "num_samples": int(len(audio))}
    save_audio(path, audio, sample_rate)
    write_atomic(sidecar_path(path), json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n")


def write_png(wav_path: Path, audio, sample_rate: int, title: str) -> None:
    """``<name>.png`` beside the WAV: its log-mel spectrogram."""
    from tta.audio.melplot import save_mel_png

    save_mel_png(wav_path.with_suffix(".png"), audio, sample_rate, title=title)


# ---------------------------------------------------------------------------------------------- command lines

# settings key (tta.pipelines.outputs) -> the flag that sets it; keys not listed have no flag
FLAGS = {
    "negative_prompt": "negative",
    "duration": "duration",
    "steps": "steps",
    "guidance": "guidance",
    "seed": "seed",
    "sampler": "sampler",
    "candidates": "candidates",
    "strength": "strength",
    "ranges": "range",
    "feather": "feather",
    "cutoff_hz": "cutoff_hz",
    "compose_mode": "compose_mode",
    "mix_gain_db": "mix_gain_db",
    "loudness": "loudness",
    "retrieval": "retrieval",
    "top_k": "top_k",
    "model": "model",
}


def cli_line(command: list[str], options: dict[str, Any]) -> str:
    """A shell-quoted command line: ``command`` words, then ``--key value`` per option (None skipped, list values
    repeat the option, True is a bare flag)."""
    import shlex

    words = list(command)
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is None or value is False:
            continue
        if value is True:
            words.append(flag)
        else:
            for item in value if isinstance(value, (list, tuple)) else [value]:
                words += [flag, f"{item:g}" if isinstance(item, float) else str(item)]
    return shlex.join(words)


def command_line(settings: dict[str, Any], command: list[str]) -> str:
    """The ``tta generate`` / ``tta edit`` line that re-runs one waveform's settings (``settings_for(i)``)."""
    options = {flag: settings.get(key) for key, flag in FLAGS.items() if key in settings}
    if options.get("range"):
        options["range"] = [f"{a:g}:{b:g}" for a, b in options["range"]]
    if settings.get("mode") != "superres":
        options.pop("cutoff_hz", None)
    if settings.get("candidates") == 1:
        options.pop("candidates")
    from tta.audio.limiter import DEFAULT_PEAK_LIMIT

    limit = settings.get("peak_limit", DEFAULT_PEAK_LIMIT)
    options["peak_limit"] = limit if limit not in (None, DEFAULT_PEAK_LIMIT) else None
    options["no_peak_limit"] = limit is None
    options["no_prior"] = settings.get("prior") is False
    options["no_compose"] = settings.get("compose") is False
    if settings.get("lora"):  # tta.lora: each loaded adapter, as --lora PATH[:SCALE]
        options["lora"] = [e["path"] if e["scale"] == 1 else f"{e['path']}:{e['scale']:g}" for e in settings["lora"]]
    return cli_line(command, options)
