"""``tta eval``: FAD, FAD∞, KAD, CLAP score, KL, Inception Score and paired metrics of a folder of generated clips.

A thin layer over :func:`tta.evaluation.evaluate`; writes ``report.json`` and ``report.md`` (and PNG plots with
``--plots``) to ``--out`` and prints the Markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from tta.evaluation.backends import BACKENDS, DEFAULT_BACKEND

    p = subparsers.add_parser(
        "eval",
        help="score generated audio against reference audio (FAD, CLAP score, KL, IS, ...)",
        description="Score a folder of generated clips against a folder of reference clips. Offline by default: "
        "the embedding backend is tta's own CLAP. Clips pair up by file name (without suffix).",
    )
    p.add_argument("--generated", required=True, type=Path, metavar="DIR", help="folder of generated audio files")
    p.add_argument(
        "--reference", required=True, type=Path, metavar="DIR", help="folder of reference (real) audio files"
    )
    p.add_argument(
        "--prompts",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSONL/CSV/TSV with file,prompt[,label] per clip (default: the sidecars tta generate writes)",
    )
    p.add_argument(
        "--backend", default=DEFAULT_BACKEND, help=f"embedding model: {', '.join(BACKENDS)} (default %(default)s)"
    )
    p.add_argument(
        "--backend-weights",
        default=None,
        metavar="PATH",
        help="the backend's weights: a CLAP folder (clap, laion-clap), vggish-10086976.pth, Cnn14_mAP=0.431.pth, "
        "aisfx's checkpoint.pth (default: the installed aisfx wheel's)",
    )
    p.add_argument(
        "--per-clip",
        action="store_true",
        help="add each generated clip's kernel distance to the reference set, its CLAP score and loudness to the "
        "report (a table, farthest clip first), to find the bad clips",
    )
    p.add_argument(
        "--kad-bandwidth",
        default=None,
        metavar="H",
        help="KAD kernel bandwidth: a number, or 'reference' (median pairwise distance of the reference frames); "
        "default: kadtk's, that of the generated frames",
    )
    p.add_argument(
        "--kad-pool",
        default="frames",
        choices=["frames", "clips"],
        help="KAD over every frame (default, as kadtk and FAD) or one mean embedding per clip (unbiased in the "
        "number of clips for frame-level backends: aisfx, vggish)",
    )
    p.add_argument("--no-loudness", action="store_true", help="skip the loudness spread (LUFS, true peak)")
    p.add_argument(
        "--clap", default=None, metavar="DIR", help="CLAP folder for the CLAP score with a non-CLAP backend"
    )
    pairing = p.add_mutually_exclusive_group()
    pairing.add_argument(
        "--paired", action="store_true", default=None, help="require a same-named reference for every clip"
    )
    pairing.add_argument(
        "--unpaired", dest="paired", action="store_false", default=None, help="skip KL and paired metrics"
    )
    p.add_argument(
        "-o", "--out", type=Path, default=Path("eval"), metavar="DIR", help="report folder (default %(default)s)"
    )
    p.add_argument("--plots", action="store_true", help="also write PNG plots (needs matplotlib)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    p.add_argument("--device", default="cpu", help="torch device (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from transformers.utils import logging as transformers_logging

    from tta.evaluation import evaluate, markdown, write_report

    transformers_logging.disable_progress_bar()  # our own bars only
    report = evaluate(
        args.generated,
        args.reference,
        prompts=args.prompts,
        backend=args.backend,
        backend_weights=args.backend_weights,
        clap=args.clap,
        paired=args.paired,
        device=args.device,
        cache=not args.no_cache,
        progress=not args.no_progress,
        per_clip=args.per_clip,
        kad_bandwidth=_bandwidth(args.kad_bandwidth),
        kad_pool=args.kad_pool,
        loudness=not args.no_loudness,
    )
    paths = write_report(report, args.out, plots=args.plots)
    print(markdown(report), end="")
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def _bandwidth(value: str | None) -> float | str | None:
    from tta.errors import InputError

    if value is None or value in ("reference", "evaluated"):
        return value
    try:
        return float(value)
    except ValueError as err:
        raise InputError(f"--kad-bandwidth must be a number or 'reference', got {value!r}") from err
