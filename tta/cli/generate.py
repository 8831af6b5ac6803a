"""``tta generate``: prompts in, 16 kHz WAV files (each with a JSON sidecar) out.

A thin layer over :class:`tta.pipeline.TTAPipeline`: it checks the arguments and the output path before any
model loads, splits the prompts into batches, calls the pipeline, and writes files atomically.

Seeding: with base seed ``S`` and ``n`` candidates, output ``k`` (0-based, in prompt order) draws its candidates
from seeds ``S + k * n + c``, each from its own ``torch.Generator``. The sidecar records the seed of the kept
waveform and the batch it was generated in; ``tta generate --from-sidecar FILE`` re-runs that batch and writes
the same waveform bit for bit (on the same machine and library versions). With the default ``--batch-size 1``
and one candidate, ``tta generate PROMPT --seed <sidecar seed>`` also reproduces it exactly.

Many prompts (``--prompts-file``, e.g. an evaluation set): batches of ``--batch-size`` prompts can be split
across processes. Batch ``b`` goes to shard ``b mod N``; with ``--shard K/N`` a process generates shard K, and
under ``accelerate launch`` (or torchrun) each process takes shard ``RANK/WORLD_SIZE`` by itself, with
``--device auto`` picking its own GPU. File names and seeds depend only on a prompt's position in the list, so
the files are the same however the work is split (bit for bit with equal thread counts: ``accelerate launch
--cpu`` sets ``OMP_NUM_THREADS=1``, which alone moves samples by one 16-bit step). ``--skip-existing`` skips
batches whose WAVs and sidecars are all there already (resuming an interrupted run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

from tta.errors import InputError

DEFAULT_OUTPUT = "outputs"
SIDECAR_VERSION = 1


def register(subparsers) -> None:
    from tta.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS
    from tta.sampling.mixing import COMPOSE_MODES, DEFAULT_MIX_GAIN_DB
    from tta.sampling.schedulers import DEFAULT_SAMPLER, SAMPLERS
    from tta.sampling.shapes import DEFAULT_DURATION_S, MAX_DURATION_S

    p = subparsers.add_parser(
        "generate",
        help="generate audio from text prompts",
        description="Generate 16 kHz WAV files from text prompts; each WAV gets a JSON sidecar to regenerate it.",
    )
    p.add_argument("prompts", nargs="*", metavar="PROMPT", help="one or more text prompts")
    p.add_argument("--prompts-file", type=Path, help="a text file with one prompt per line (blank lines skipped)")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help=f"a .wav file (one output) or a folder (default: {DEFAULT_OUTPUT}/); files are named from the prompt",
    )
    p.add_argument(
        "--duration", type=float, default=DEFAULT_DURATION_S, help=f"seconds, > 0 and <= {MAX_DURATION_S:g}"
    )
    p.add_argument(
        "--steps", type=int, default=None, help=f"sampler steps, 1-500 (default: the model's, else {DEFAULT_STEPS})"
    )
    p.add_argument(
        "--guidance", type=float, default=None, help=f"guidance scale (default: the model's, else {DEFAULT_GUIDANCE})"
    )
    p.add_argument("--negative", default=None, help="negative prompt applied to every prompt")
    p.add_argument("--seed", type=int, default=None, help="base seed (default: random, recorded in the sidecars)")
    p.add_argument("--candidates", type=int, default=1, help="generate N per output, keep the best by CLAP score")
    p.add_argument("--sampler", default=DEFAULT_SAMPLER, help=f"one of {', '.join(SAMPLERS)} (default %(default)s)")
    p.add_argument("--model", default=None, help="a tta or diffusers AudioLDM model folder (default: checkpoints/)")
    p.add_argument("--clap", default=None, help="CLAP folder used to rank --candidates (default: the model's CLAP)")
    p.add_argument("--batch-size", type=int, default=1, help="prompts generated together (default %(default)s)")
    p.add_argument(
        "--device", default="cpu", help="torch device, or auto (this process's GPU if any) (default %(default)s)"
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="K/N",
        help="generate only shard K of N (batch b belongs to shard b mod N); default: RANK/WORLD_SIZE when "
        "launched by accelerate or torchrun, else everything",
    )
    p.add_argument("--skip-existing", action="store_true", help="skip batches whose WAVs and sidecars all exist")
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="precision of the UNet, VAE and vocoder (bfloat16: faster on recent CPUs, ~1%% different audio)",
    )
    p.add_argument("--from-sidecar", type=Path, default=None, help="regenerate the output a sidecar JSON describes")
    p.add_argument(
        "--no-prior",
        action="store_true",
        help="condition on the raw CLAP text embedding even if the model has a retrieval prior (prior/)",
    )
    add_retrieval_arguments(p)
    add_compose_argument(p)
    p.add_argument(
        "--compose-mode",
        choices=COMPOSE_MODES,
        default="mix",
        help="how a prompt split into sounds is rendered: mix (each sound generated alone, then mixed; default) or "
        "guidance (one generation guided towards every sound)",
    )
    p.add_argument(
        "--mix-gain-db",
        type=float,
        default=DEFAULT_MIX_GAIN_DB,
        help="with --compose-mode mix: level of the later sounds against the first named, RMS dB (default "
        "%(default)g)",
    )
    add_peak_limit_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--mel-png", action="store_true", help="also save each output's log-mel spectrogram as <name>.png beside it"
    )
    p.set_defaults(func=run)


def add_retrieval_arguments(p: argparse.ArgumentParser) -> None:
    """``--retrieval INDEX --top-k K`` (shared with ``tta edit``)."""
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


def check_retrieval_args(args: argparse.Namespace) -> None:
    if args.top_k is not None and args.retrieval is None:
        raise InputError("--top-k needs --retrieval INDEX")
    if args.top_k is not None and args.top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {args.top_k}")


def add_compose_argument(p: argparse.ArgumentParser) -> None:
    """``--no-compose`` (shared by ``tta generate`` and ``tta edit``)."""
    p.add_argument(
        "--no-compose",
        dest="compose",
        action="store_const",
        const=False,
        default=None,
        help="condition a prompt that names several sounds on it whole, not on each sound (default: split into "
        "sounds when the model's prior allows it; the sidecar lists the sounds used)",
    )


def add_peak_limit_arguments(p: argparse.ArgumentParser) -> None:
    """``--peak-limit X`` / ``--no-peak-limit`` (shared by ``tta generate`` and ``tta edit``)."""
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


# ---------------------------------------------------------------------------------------------- checks


def slugify(text: str, max_len: int = 48) -> str:
    """A file-name-safe slug of a prompt: lower case, ``[a-z0-9_]`` only."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:max_len].rstrip("_") or "audio"


def collect_prompts(prompts: list[str], prompts_file: Path | None) -> list[str]:
    """Positional prompts, then the lines of ``prompts_file``; empty or whitespace prompts are an error."""
    out = []
    for p in prompts:
        if not p.strip():
            raise InputError("empty or whitespace prompt")
        out.append(p.strip())
    if prompts_file is not None:
        try:
            lines = Path(prompts_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read prompts file {prompts_file}: {err}") from err
        out.extend(line.strip() for line in lines if line.strip())
    if not out:
        raise InputError("no prompt given (pass PROMPT arguments or --prompts-file)")
    return out


def check_args(args: argparse.Namespace) -> None:
    """Reject out-of-range numbers and unknown names before any model loads."""
    from tta.pipeline import MAX_STEPS
    from tta.sampling.schedulers import sampler_name
    from tta.sampling.shapes import check_duration

    check_duration(args.duration)
    if args.steps is not None and not 1 <= args.steps <= MAX_STEPS:
        raise InputError(f"--steps must be between 1 and {MAX_STEPS}, got {args.steps}")
    if args.guidance is not None and not math.isfinite(args.guidance):
        raise InputError(f"--guidance must be a finite number, got {args.guidance}")
    if args.candidates < 1:
        raise InputError(f"--candidates must be >= 1, got {args.candidates}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.seed is not None and not 0 <= args.seed < 2**62:
        raise InputError(f"--seed must be in [0, 2**62), got {args.seed}")
    if args.negative is not None and not isinstance(args.negative, str):
        raise InputError("--negative must be a string")
    check_peak_limit_arg(args)
    check_retrieval_args(args)
    args.sampler = sampler_name(args.sampler)


def check_peak_limit_arg(args: argparse.Namespace) -> None:
    from tta.audio.limiter import check_peak_limit

    try:
        args.peak_limit = check_peak_limit(args.peak_limit)
    except InputError as err:
        raise InputError(f"--peak-limit must be in (0, 1], got {args.peak_limit}") from err


def parse_shard(shard: str | None, environ=os.environ) -> tuple[int, int]:
    """``(index, count)`` from ``--shard K/N``, else from ``RANK``/``WORLD_SIZE`` (set by accelerate launch)."""
    if shard is None:
        try:
            return int(environ.get("RANK", 0)), max(1, int(environ.get("WORLD_SIZE", 1)))
        except ValueError as err:
            raise InputError(f"bad RANK/WORLD_SIZE in the environment: {err}") from err
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", shard)
    if match is None or not 0 <= int(match[1]) < int(match[2]):
        raise InputError(f"--shard must be K/N with 0 <= K < N, got {shard!r}")
    return int(match[1]), int(match[2])


def resolve_device(device: str, environ=os.environ) -> str:
    """``auto``: ``cuda:<LOCAL_RANK>`` when CUDA is available (one GPU per launched process), else cpu."""
    if device != "auto":
        return device
    import torch

    return f"cuda:{int(environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"


def plan_outputs(output: str | None, prompts: list[str]) -> list[Path]:
    """One WAV path per prompt: ``output`` itself if it names a .wav (single prompt), else files in a folder."""
    target = Path(output if output is not None else DEFAULT_OUTPUT).expanduser()
    if target.suffix.lower() == ".wav":
        if len(prompts) != 1:
            raise InputError(f"-o {target} is a single file but there are {len(prompts)} prompts; give a folder")
        return [target]
    if target.exists() and not target.is_dir():
        raise InputError(f"-o {target} exists and is not a folder")
    return [target / f"{slugify(p)}_{i:03d}.wav" for i, p in enumerate(prompts)]


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


# ---------------------------------------------------------------------------------------------- sidecars


def sidecar_path(wav: Path) -> Path:
    return wav.with_suffix(".json")


def make_sidecar(args: argparse.Namespace, pipe, **fields: Any) -> dict[str, Any]:
    import torch

    from tta import __version__

    return {
        "sidecar_version": SIDECAR_VERSION,
        **fields,
        "negative_prompt": args.negative,
        "model": pipe.name_or_path,
        "model_hash": pipe.model_hash,
        "clap": str(Path(args.clap).resolve()) if args.clap else None,
        "sampler": args.sampler,
        "steps": args.steps,
        "guidance": args.guidance,
        "duration": args.duration,
        "candidates": args.candidates,
        "prior": pipe.prior is not None,
        "retrieval": str(Path(args.retrieval).resolve()) if pipe.retrieval is not None else None,
        "top_k": pipe.retrieval_top_k,
        "compose": args.compose,
        "compose_mode": args.compose_mode,
        "mix_gain_db": args.mix_gain_db,
        "peak_limit": args.peak_limit,
        "batch_size": args.batch_size,
        "dtype": args.dtype,
        "device": args.device,
        "sample_rate": pipe.sample_rate,
        "tta_version": __version__,
        "torch_version": torch.__version__,
    }


def load_sidecar(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Read a sidecar and set ``args`` from it (the settings it was generated with)."""
    from tta.sampling.mixing import DEFAULT_MIX_GAIN_DB

    try:
        meta = json.loads(Path(path).read_text())
        for key in ("prompt", "base_seed", "index", "batch_prompts", "batch_first_index", "model", "model_hash"):
            meta[key]  # noqa: B018 - presence check
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"not a tta sidecar: {path} ({err})") from err
    args.negative = meta.get("negative_prompt")
    args.sampler, args.steps, args.guidance = meta["sampler"], meta["steps"], meta["guidance"]
    args.duration, args.candidates, args.batch_size = meta["duration"], meta["candidates"], meta["batch_size"]
    args.seed = meta["base_seed"]
    args.no_prior = meta.get("prior") is False
    if args.retrieval is None:
        args.retrieval = meta.get("retrieval")
    if args.top_k is None:
        args.top_k = meta.get("top_k")
    args.peak_limit = meta.get("peak_limit")  # sidecars from before the limiter: none was applied
    args.compose = meta.get("compose", False)  # sidecars from before composition: none was used
    args.compose_mode = meta.get("compose_mode", "guidance")  # before mixing, composed prompts were guided
    args.mix_gain_db = meta.get("mix_gain_db", DEFAULT_MIX_GAIN_DB)
    args.dtype = meta.get("dtype", "float32")
    if args.model is None:
        args.model = meta["model"]
    if args.clap is None:
        args.clap = meta.get("clap")
    return meta


# ---------------------------------------------------------------------------------------------- run


def candidate_seeds(base: int, first: int, count: int, n_cand: int) -> list[int]:
    """Seeds of outputs ``first .. first + count - 1``, ``n_cand`` consecutive seeds each."""
    return [base + k * n_cand + c for k in range(first, first + count) for c in range(n_cand)]


def run(args: argparse.Namespace) -> int:
    meta = load_sidecar(args.from_sidecar, args) if args.from_sidecar is not None else None
    if meta is not None:
        if args.prompts or args.prompts_file:
            raise InputError("--from-sidecar takes no prompts")
        prompts = [meta["prompt"]]
        out = args.output if args.output is not None else str(Path(args.from_sidecar).with_suffix(".regen.wav"))
        paths = plan_outputs(out, prompts)
    else:
        prompts = collect_prompts(args.prompts, args.prompts_file)
        paths = plan_outputs(args.output, prompts)
    check_args(args)
    shard, num_shards = parse_shard(args.shard)
    if num_shards > 1 and args.seed is None and meta is None:
        raise InputError("generating in shards needs --seed (every shard must share the base seed)")
    check_writable(paths)
    args.device = resolve_device(args.device)
    batches = [
        first
        for b, first in enumerate(range(0, len(prompts), args.batch_size))
        if b % num_shards == shard
        and not (args.skip_existing and all(_done(p) for p in paths[first : first + args.batch_size]))
    ]
    if meta is None and not batches:
        print(f"nothing to generate in shard {shard}/{num_shards} (no batch, or every output exists)")
        return 0
    base_seed = args.seed if args.seed is not None else secrets.randbelow(2**31)

    # Load the model (and the re-ranking CLAP) only after every argument has been checked.
    import torch
    from transformers.utils import logging as transformers_logging

    from tta.models.clap import load_clap
    from tta.pipeline import TTAPipeline

    transformers_logging.disable_progress_bar()  # one progress bar: the sampler's

    pipe = TTAPipeline.from_pretrained(args.model, device=args.device, torch_dtype=getattr(torch, args.dtype))
    if args.clap is not None:
        pipe.reranker = load_clap(args.clap, device=args.device)
    if args.no_prior:
        pipe.prior = None
    if args.retrieval is not None:
        pipe.set_retrieval(args.retrieval, args.top_k)
    if meta is not None and meta["model_hash"] != pipe.model_hash:
        raise InputError(
            f"model {args.model} (hash {pipe.model_hash}) is not the one in the sidecar ({meta['model_hash']})"
        )
    args.steps = pipe.default_steps if args.steps is None else args.steps  # the sidecar records what ran
    args.guidance = pipe.default_guidance if args.guidance is None else args.guidance

    common = {
        "audio_length_in_s": args.duration,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "num_candidates": args.candidates,
        "sampler": args.sampler,
        "progress": not args.no_progress,
        "peak_limit": args.peak_limit,
        "compose": args.compose,
        "compose_mode": args.compose_mode,
        "mix_gain_db": args.mix_gain_db,
    }
    if meta is not None:  # re-run the original batch, keep the one output
        batch, first = list(meta["batch_prompts"]), int(meta["batch_first_index"])
        result = pipe(
            batch,
            negative_prompt=args.negative,
            seed=candidate_seeds(base_seed, first, len(batch), args.candidates),
            **common,
        )
        i = int(meta["index"]) - first
        _write(paths[0], result.audios[i], pipe.sample_rate, {**meta, "regenerated_from": str(args.from_sidecar)})
        if args.mel_png:
            _write_png(paths[0], result.audios[i], pipe.sample_rate, meta["prompt"])
        print(paths[0])
        return 0

    for first in batches:
        batch = prompts[first : first + args.batch_size]
        result = pipe(
            batch,
            negative_prompt=args.negative,
            seed=candidate_seeds(base_seed, first, len(batch), args.candidates),
            **common,
        )
        for j, prompt in enumerate(batch):
            k = first + j
            fields = {
                "prompt": prompt,
                "seed": result.seeds[j],
                "base_seed": base_seed,
                "index": k,
                "batch_prompts": batch,
                "batch_first_index": first,
            }
            if result.clap_scores is not None:
                fields["clap_score"] = float(result.clap_scores[j])
            fields["peak_gain"] = float(result.peak_gains[j])
            fields["sources"] = result.sources[j]
            if result.retrieved is not None:
                fields["retrieved"] = result.retrieved[j]
            _write(paths[k], result.audios[j], pipe.sample_rate, make_sidecar(args, pipe, **fields))
            if args.mel_png:
                _write_png(paths[k], result.audios[j], pipe.sample_rate, prompt)
            print(paths[k])
    return 0


def _done(path: Path) -> bool:
    return path.is_file() and sidecar_path(path).is_file()


def _write_png(wav_path: Path, audio, sample_rate: int, prompt: str) -> None:
    from tta.audio.melplot import save_mel_png

    save_mel_png(wav_path.with_suffix(".png"), audio, sample_rate, title=prompt)


def _write(path: Path, audio, sample_rate: int, sidecar: dict[str, Any]) -> None:
    from tta.audio.io import save_audio, write_atomic

    sidecar = {**sidecar, "file": path.name, "num_samples": int(len(audio))}
    save_audio(path, audio, sample_rate)
    write_atomic(sidecar_path(path), json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n")
