"""``tta data build | summary``: build the training corpus from Debian packages, or print its counts."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

from tta.errors import InputError


def _default_root() -> Path:
    from tta.paths import cache_dir

    return cache_dir() / "corpus"


def _cap(text: str) -> tuple[str, int]:
    label, sep, num = text.rpartition("=")
    if not sep or not label or not num.isdigit():
        raise argparse.ArgumentTypeError(f"expected LABEL=N, got {text!r}")
    return label, int(num)


def _config_file(path: str) -> dict:
    """The keys of a corpus YAML (arguments of :class:`tta.data.corpus.BuildConfig`)."""
    import dataclasses

    from omegaconf import OmegaConf

    from tta.data.corpus import BuildConfig

    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"config not found: {file}")
    try:
        options = OmegaConf.to_container(OmegaConf.load(file), resolve=True) or {}
    except Exception as err:
        raise InputError(f"cannot read {file}: {err}") from err
    allowed = {f.name for f in dataclasses.fields(BuildConfig)} - {"out", "debs_dir", "sources", "packages", "labels"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise InputError(f"{file}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return options


def _build(args: argparse.Namespace) -> int:
    from tta.data.corpus import BuildConfig, build_corpus
    from tta.data.summary import format_table, summarize, write_reports

    options = _config_file(args.config) if args.config else {}
    for key in ("max_seconds", "min_seconds", "workers"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if options.get("workers", 2) < 1:
        raise InputError("--workers must be >= 1")
    if options.get("max_seconds", 1.0) <= 0:
        raise InputError("--max-seconds must be > 0")
    config = BuildConfig(
        out=Path(args.out).expanduser() if args.out else _default_root(),
        debs_dir=Path(args.debs).expanduser() if args.debs else None,
        sources=Path(args.sources).expanduser() if args.sources else None,
        packages=args.package or None,
        labels=args.label or None,
        download=not args.offline,
        keep_extracted=args.keep_extracted,
        **options,
    )
    for label, n in args.cap or []:
        config.max_per_label[label] = n
    start = time.monotonic()
    result = build_corpus(config)
    skipped = [asdict(s) for s in result.skipped]
    summary = summarize(result.records, skipped, result.capped)
    write_reports(result.root, summary, skipped)
    print(format_table(summary))
    reused = f" ({len(result.packages_reused)} package(s) already built)" if result.packages_reused else ""
    print(f"\ncorpus: {result.root} ({time.monotonic() - start:.0f} s){reused}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    import json

    from tta.data.summary import format_table, read_manifest, summarize

    root = Path(args.root).expanduser() if args.root else _default_root()
    if not (root / "manifest.jsonl").is_file():
        raise InputError(f"no corpus at {root} (run `tta data build` first)")
    skipped, capped = [], {}
    if (root / "summary.json").is_file():
        saved = json.loads((root / "summary.json").read_text())
        skipped, capped = saved.get("skipped_rows", []), saved.get("left_out_by_caps", {})
    print(format_table(summarize(read_manifest(root), skipped, capped)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tta data`` with its ``build`` and ``summary`` sub-commands."""
    parser = subparsers.add_parser("data", help="build or inspect the training corpus")
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=type(parser))
    parser.set_defaults(func=lambda _args: parser.print_help() or 2)

    build = sub.add_parser("build", help="fetch Debian packages and build the 16 kHz FLAC corpus + manifest")
    build.add_argument("--out", help="corpus root (default: $TTA_CACHE/corpus, i.e. ~/.cache/tta/corpus)")
    build.add_argument("--debs", help="folder for downloaded .deb files (default: <out>/debs)")
    build.add_argument("--sources", help="sources TSV (default: the list shipped with tta)")
    build.add_argument("--package", action="append", help="only this package (repeatable)")
    build.add_argument("--label", action="append", help="only this class (repeatable)")
    build.add_argument("--cap", action="append", type=_cap, metavar="LABEL=N", help="at most N recordings of LABEL")
    build.add_argument(
        "--config", help="corpus YAML (keys of tta.data.corpus.BuildConfig), e.g. configs/data/corpus.yaml"
    )
    build.add_argument("--max-seconds", type=float, help="keep at most this much of each recording (default 180)")
    build.add_argument("--min-seconds", type=float, help="skip recordings shorter than this (default 0.05)")
    build.add_argument("--workers", type=int, help="conversion processes (default 2)")
    build.add_argument("--offline", action="store_true", help="use only .deb files already downloaded")
    build.add_argument("--keep-extracted", action="store_true", help="keep unpacked package folders")
    build.set_defaults(func=_build)

    summary = sub.add_parser("summary", help="print the class/licence table of a built corpus")
    summary.add_argument("--root", help="corpus root (default: $TTA_CACHE/corpus)")
    summary.set_defaults(func=_summary)
