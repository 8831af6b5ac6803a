"""``tta generate``: prompts in, 16 kHz WAV files (each with a JSON sidecar) out.

A thin layer over :class:`tta.pipelines.TTAPipeline`: it checks the arguments and the output path before any
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
import os
import re
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
    sidecar_path,
    slugify,
    write_output,
    write_png,
)
from tta.errors import InputError

SIDECAR_VERSION = 1
# what a sidecar written before a setting existed means by its absence
SIDECAR_DEFAULTS = {"peak_limit": None, "compose": False, "compose_mode": "guidance", "dtype": "float32"}


def add_stream_argument(p: argparse.ArgumentParser) -> None:
    """``--stream-decode [SECONDS]`` (:meth:`~tta.pipelines.TTAPipeline.enable_streaming_decode`)."""
    p.add_argument(
        "--stream-decode",
        type=float,
        nargs="?",
        const=20.0,
        default=None,
        metavar="SECONDS",
        help="decode audio of SECONDS or longer (default 20) in overlapping chunks, so the decoder's memory stays "
        "flat for long audio (close to, not identical with, a whole decode)",
    )


def add_winograd_argument(p: argparse.ArgumentParser) -> None:
    """``--winograd-decode`` (:meth:`~tta.pipelines.TTAPipeline.enable_winograd_decode`)."""
    p.add_argument(
        "--winograd-decode",
        action="store_true",
        help="run the VAE decoder's wide convolutions by Winograd's algorithm (NNPACK, CPU float32): faster for "
        "large decoders such as AudioLDM's, within ~1e-5 of the default decode, not identical to it",
    )


def register(subparsers) -> None:
    from tta.pipelines.checks import MAX_CANDIDATES
    from tta.sampling.mixing import COMPOSE_MODES, DEFAULT_MIX_GAIN_DB
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
        help="a .wav file (one output) or a folder (default: outputs/); files are named from the prompt",
    )
    p.add_argument(
        "--duration", type=float, default=DEFAULT_DURATION_S, help=f"seconds, > 0 and <= {MAX_DURATION_S:g}"
    )
    add_sampling_arguments(p)
    p.add_argument(
        "--candidates",
        type=int,
        default=1,
        help=f"generate N (at most {MAX_CANDIDATES}) per output, keep the best by CLAP score",
    )
    p.add_argument("--clap", default=None, help="CLAP folder used to rank --candidates (default: the model's CLAP)")
    p.add_argument("--batch-size", type=int, default=1, help="prompts generated together (default %(default)s)")
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
        "--lora",
        action="append",
        metavar="ADAPTER[:SCALE]",
        help="load a LoRA adapter (tta finetune) at SCALE (default 1); repeat to stack adapters",
    )
    add_model_arguments(p)
    add_stream_argument(p)
    add_winograd_argument(p)
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
    add_output_arguments(p)
    p.add_argument(
        "--mel-png", action="store_true", help="also save each output's log-mel spectrogram as <name>.png beside it"
    )
    p.set_defaults(func=run)


# ---------------------------------------------------------------------------------------------- checks


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
    """Reject out-of-range numbers and unknown names before any model loads (the core's checks)."""
    from tta.pipelines import checks

    check_flag("--duration", checks.check_duration, args.duration)
    check_flag("--candidates", checks.check_count, args.candidates, "candidates", checks.MAX_CANDIDATES)
    check_flag("--batch-size", checks.check_count, args.batch_size, "batch size")
    check_flag("--mix-gain-db", checks.check_gain_db, args.mix_gain_db)
    check_common_args(args)


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


def plan_outputs(output: str | None, prompts: list[str]) -> list[Path]:
    """One WAV path per prompt: ``output`` itself if it names a .wav (single prompt), else files in a folder."""
    target = output_folder(output)
    if target.suffix.lower() == ".wav":
        if len(prompts) != 1:
            raise InputError(f"-o {target} is a single file but there are {len(prompts)} prompts; give a folder")
        return [target]
    return [target / f"{slugify(p)}_{i:03d}.wav" for i, p in enumerate(prompts)]


# ---------------------------------------------------------------------------------------------- sidecars


def load_sidecar(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Read a sidecar and set ``args`` from it (the settings it was generated with)."""
    from tta.sampling.mixing import DEFAULT_MIX_GAIN_DB

    try:
        meta = json.loads(Path(path).read_text())
        for key in ("prompt", "base_seed", "index", "batch_prompts", "batch_first_index", "model", "model_hash"):
            meta[key]  # noqa: B018 - presence check
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"not a tta sidecar: {path} ({err})") from err
    meta = {**SIDECAR_DEFAULTS, "mix_gain_db": DEFAULT_MIX_GAIN_DB, **meta}
    args.negative = meta.get("negative_prompt")
    args.sampler, args.steps, args.guidance = meta["sampler"], meta["steps"], meta["guidance"]
    args.duration, args.candidates, args.batch_size = meta["duration"], meta["candidates"], meta["batch_size"]
    args.seed = meta["base_seed"]
    args.no_prior = meta.get("prior") is False
    args.retrieval = args.retrieval if args.retrieval is not None else meta.get("retrieval")
    args.top_k = args.top_k if args.top_k is not None else meta.get("top_k")
    args.compose, args.compose_mode, args.mix_gain_db = meta["compose"], meta["compose_mode"], meta["mix_gain_db"]
    args.peak_limit, args.loudness, args.dtype = meta["peak_limit"], meta.get("loudness"), meta["dtype"]
    args.model = args.model if args.model is not None else meta["model"]
    args.clap = args.clap if args.clap is not None else meta.get("clap")
    if getattr(args, "stream_decode", None) is None and meta.get("stream_decode"):
        args.stream_decode = meta["stream_decode"]["min_seconds"]
    args.winograd_decode = getattr(args, "winograd_decode", False) or bool(meta.get("winograd_decode"))
    if not getattr(args, "lora", None):
        from tta.cli.lora import sidecar_specs

        args.lora = sidecar_specs(meta)
    return meta


def batch_sidecar(args: argparse.Namespace, result, j: int, first: int, base_seed: int) -> dict[str, Any]:
    """Output ``first + j``'s sidecar: the pipeline's settings of its waveform and where it sits in the run."""
    return {
        "sidecar_version": SIDECAR_VERSION,
        **result.settings_for(j),
        "base_seed": base_seed,
        "index": first + j,
        "batch_prompts": list(result.prompts),
        "batch_first_index": first,
        "batch_size": args.batch_size,
        "clap": str(Path(args.clap).resolve()) if args.clap else None,
    }


# ---------------------------------------------------------------------------------------------- run


def candidate_seeds(base: int, first: int, count: int, n_cand: int) -> list[int]:
    """Seeds of outputs ``first .. first + count - 1``, ``n_cand`` consecutive seeds each."""
    return [base + k * n_cand + c for k in range(first, first + count) for c in range(n_cand)]


def call_kwargs(args: argparse.Namespace, index) -> dict[str, Any]:
    """The pipeline's keyword arguments of the flags (the same for every batch)."""
    return {
        "negative_prompt": args.negative,
        "audio_length_in_s": args.duration,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "num_candidates": args.candidates,
        "sampler": args.sampler,
        "progress": not args.no_progress,
        "peak_limit": args.peak_limit,
        "loudness": args.loudness,
        "compose_mode": args.compose_mode,
        "mix_gain_db": args.mix_gain_db,
        **conditioning_kwargs(args, index),
    }


def plan(args: argparse.Namespace) -> tuple[dict | None, list[str], list[Path]]:
    """The sidecar to regenerate (or None), the prompts and their output paths."""
    meta = load_sidecar(args.from_sidecar, args) if args.from_sidecar is not None else None
    if meta is None:
        prompts = collect_prompts(args.prompts, args.prompts_file)
        return None, prompts, plan_outputs(args.output, prompts)
    if args.prompts or args.prompts_file:
        raise InputError("--from-sidecar takes no prompts")
    out = args.output if args.output is not None else str(Path(args.from_sidecar).with_suffix(".regen.wav"))
    return meta, [meta["prompt"]], plan_outputs(out, [meta["prompt"]])


def run(args: argparse.Namespace) -> int:
    from tta.pipelines.checks import random_seed

    meta, prompts, paths = plan(args)
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
    base_seed = args.seed if args.seed is not None else random_seed()

    # Load the model (and the re-ranking CLAP, the retrieval index) only after every argument has been checked.
    pipe, index = load_pipeline(args, args.dtype)
    if getattr(args, "lora", None):
        from tta.cli.lora import apply_lora_flags

        apply_lora_flags(pipe, args.lora, meta.get("lora") if meta is not None else None)
    if meta is not None and meta["model_hash"] not in known_hashes(pipe):
        raise InputError(
            f"model {args.model} (hash {pipe.model_hash}) is not the one in the sidecar ({meta['model_hash']})"
        )
    common = call_kwargs(args, index)
    if meta is not None:  # re-run the original batch, keep the one output
        batch, first = list(meta["batch_prompts"]), int(meta["batch_first_index"])
        result = pipe(batch, seed=candidate_seeds(base_seed, first, len(batch), args.candidates), **common)
        i = int(meta["index"]) - first
        write_output(
            paths[0], result.audios[i], pipe.sample_rate, {**meta, "regenerated_from": str(args.from_sidecar)}
        )
        if args.mel_png:
            write_png(paths[0], result.audios[i], pipe.sample_rate, meta["prompt"])
        print(paths[0])
        return 0

    for first in batches:
        batch = prompts[first : first + args.batch_size]
        result = pipe(batch, seed=candidate_seeds(base_seed, first, len(batch), args.candidates), **common)
        for j, prompt in enumerate(batch):
            k = first + j
            write_output(
                paths[k], result.audios[j], pipe.sample_rate, batch_sidecar(args, result, j, first, base_seed)
            )
            if args.mel_png:
                write_png(paths[k], result.audios[j], pipe.sample_rate, prompt)
            print(paths[k])
    return 0


def known_hashes(pipe) -> set[str | None]:
    """The hashes a sidecar of ``pipe``'s model may carry: today's, and tta 0.1's for the same files."""
    from tta.loading import model_hash

    hashes = {pipe.model_hash}
    if pipe.name_or_path and Path(pipe.name_or_path).is_dir():
        hashes.add(model_hash(pipe.name_or_path, as_before_0_2=True))
    return hashes


def _done(path: Path) -> bool:
    return path.is_file() and sidecar_path(path).is_file()
