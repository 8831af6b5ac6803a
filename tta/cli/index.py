"""``tta index build`` / ``tta index info``: a retrieval index of a sound library (:mod:`tta.retrieval`).

``tta index build SOURCE [SOURCE ...] -o INDEX`` embeds recordings with a model's CLAP and VAE: a SOURCE is the
corpus (its root or its ``manifest.jsonl``; ``--split`` picks splits) or any folder of audio files, captioned by
a CSV/JSON file (``--captions``), ``NAME.txt`` files beside the recordings, or their file names
(``--captions-from-names``). Building over an existing INDEX re-embeds only new or changed files and drops those
no longer in the sources. A retrieval-conditioned model uses the index with ``tta generate --retrieval INDEX``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tta.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser("index", help="build or inspect a retrieval index of a sound library")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    p = actions.add_parser(
        "build",
        help="embed a corpus split or a folder of recordings into INDEX (incremental)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sources", nargs="+", type=Path, metavar="SOURCE", help="corpus root/manifest, or an audio folder")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="INDEX", help="index folder (made or updated)")
    p.add_argument("--model", default=None, help="tta model folder whose CLAP and VAE embed (default: the shipped)")
    p.add_argument(
        "--split",
        default=None,
        help="corpus split(s), '+'-joined (default: all of the manifest; train+valid keeps the test split out)",
    )
    p.add_argument("--captions", type=Path, default=None, metavar="FILE", help="CSV or JSON captions of a folder")
    p.add_argument(
        "--captions-from-names", action="store_true", help="caption uncaptioned files by their names' words"
    )
    p.add_argument(
        "--faiss",
        choices=("auto", "flat", "hnsw"),
        default="auto",
        help="exact (flat) or approximate (HNSW) search; auto: exact up to 20k entries (default %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=build)
    i = actions.add_parser("info", help="print what an index holds")
    i.add_argument("index", type=Path, metavar="INDEX")
    i.add_argument("--json", action="store_true", help="print index.json as it is")
    i.set_defaults(func=info)


def collect(args: argparse.Namespace) -> list[dict]:
    from tta.retrieval.sources import folder_entries, manifest_entries

    entries: list[dict] = []
    for source in args.sources:
        source = source.expanduser()
        if not source.exists():
            raise InputError(f"{source}: no such file or folder")
        if source.suffix == ".jsonl" or (source / "manifest.jsonl").is_file():
            entries.extend(manifest_entries(source, args.split))
        else:
            entries.extend(folder_entries(source, args.captions, args.captions_from_names))
    seen, unique = set(), []
    for entry in entries:  # a file named by two sources is indexed once
        if entry["path"] not in seen:
            seen.add(entry["path"])
            unique.append(entry)
    return unique


def build(args: argparse.Namespace) -> int:
    from tta.loading import clap_fingerprint
    from tta.paths import default_model_dir
    from tta.pipelines import TTAPipeline
    from tta.retrieval.build import build_index
    from tta.retrieval.index import INFO_NAME, RetrievalIndex

    start = time.perf_counter()
    entries = collect(args)
    model = Path(args.model).expanduser() if args.model else default_model_dir()
    previous = None
    if (args.output / INFO_NAME).is_file():
        previous = RetrievalIndex.load(args.output)
    elif args.output.exists() and any(args.output.iterdir()):
        raise InputError(f"{args.output} exists and is not a tta index: give an empty or new folder")
    pipe = TTAPipeline.from_pretrained(model if args.model else None)
    fingerprint = clap_fingerprint(model / "clap") if (model / "clap").is_dir() else None
    index, report = build_index(entries, pipe, fingerprint, previous, args.faiss, progress=not args.no_progress)
    index.save(args.output, {"model": str(model.resolve()), "sources": [str(s) for s in args.sources]})
    for line in report.skipped:
        print(f"skipped {line}")
    took = time.perf_counter() - start
    print(
        f"{args.output}: {len(index)} entries ({int(index.captioned.sum())} captioned); embedded {report.embedded}, "
        f"reused {report.reused}, removed {report.removed}, skipped {len(report.skipped)}; "
        f"{index.info()['faiss']} search; {took:.1f} s"
    )
    return 0


def info(args: argparse.Namespace) -> int:
    from tta.retrieval.index import INFO_NAME, RetrievalIndex

    index = RetrievalIndex.load(args.index)
    if args.json:
        print((args.index / INFO_NAME).read_text(), end="")
        return 0
    meta = json.loads((args.index / INFO_NAME).read_text())
    facts = index.info()
    labels: dict[str, int] = {}
    for entry in index.entries:
        for label in entry.get("labels") or ["(no label)"]:
            labels[label] = labels.get(label, 0) + 1
    print(f"{args.index}: tta retrieval index, version {facts['version']}")
    print(f"  entries      {facts['entries']} ({facts['captioned']} captioned, {facts['groups']} source recordings)")
    print(f"  CLAP         {facts['embedding_dim']}-d, fingerprint {facts['clap_fingerprint']}")
    print(f"  latents      {facts['latent_shape'][0]} channels x {facts['latent_shape'][1]} bins (mean, std)")
    print(f"  search       {facts['faiss']}")
    if meta.get("model"):
        print(f"  built with   {meta['model']}")
    top = sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))
    print("  labels       " + ", ".join(f"{k} {v}" for k, v in top[:12]) + (" ..." if len(top) > 12 else ""))
    return 0
