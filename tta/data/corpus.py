"""``tta data build``: Debian packages -> de-duplicated 16 kHz mono FLAC clips + ``manifest.jsonl``.

Layout of a corpus root::

    debs/<package>_<version>_all.deb   downloads (kept, so a rebuild needs no network)
    audio/<id>.flac                     16 kHz mono, 16-bit
    state/<package>.json                per-package cache: every row converted (its record) or rejected (why)
    manifest.jsonl                      one clip per line (see :func:`build_corpus`)
    summary.json, LICENSES.md           counts, skips with reasons, licences per package

The build goes package by package (sorted by name). Rows already in the package's state (same conversion
settings, FLAC present) are taken from it; for the others the package is fetched, the wanted members are
unpacked to a scratch folder, each recording is read (containers included) and converted in at most
``workers`` processes, and the scratch folder is deleted. So an interrupted build resumes where it stopped,
a finished one is a no-op, and changing caps or filters converts only what is new. The manifest is then
made from the selected rows: duplicates (same source bytes or same decoded audio) dropped, splits
assigned, captions written. Every selected row that does not make it into the manifest is counted with
its reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from tta.audio.io import SAMPLE_RATE, write_atomic
from tta.data.captions import all_captions, clip_detail
from tta.data.containers import ContainerError
from tta.data.convert import Converted, convert_clip
from tta.data.resolve import Found, MissingMember, PackageFiles, container_names, wanted_paths
from tta.data.sources import (
    RESERVED_PACKAGES,
    PackageError,
    SourceRow,
    check_deb,
    extract_members,
    fetch_deb,
    find_deb,
    load_sources,
)
from tta.data.splits import assign_splits, source_group
from tta.errors import InputError

STATE_VERSION = 3


@dataclass
class BuildConfig:
    """What to build and where.

    Attributes:
        out: corpus root.
        debs_dir: where ``.deb`` files are downloaded/looked up (default ``<out>/debs``).
        sources: sources TSV (default: the one shipped with tta).
        max_per_label: cap on recordings per class (rows are taken in md5 order, so the choice is stable).
        max_seconds: keep at most this many seconds of each recording.
        max_seconds_per_label: per-class override of ``max_seconds`` (long music tracks).
        min_seconds: recordings shorter than this are skipped ("too short").
        workers: conversion processes (1 = in this process).
        packages: only these packages (None: all listed).
        labels: only these classes (None: all).
        download: fetch missing packages with apt-get (False: use only ``.deb`` files already present).
        keep_extracted: keep the scratch folders of unpacked packages.
        valid, test: split fractions.
    """

    out: Path
    debs_dir: Path | None = None
    sources: Path | None = None
    max_per_label: dict[str, int] = field(
        default_factory=lambda: {"speech": 300, "telephone speech": 100, "music": 40, "musical instrument": 200}
    )
    max_seconds: float = 180.0
    max_seconds_per_label: dict[str, float] = field(default_factory=lambda: {"music": 60.0})
    min_seconds: float = 0.05
    workers: int = 2
    packages: list[str] | None = None
    labels: list[str] | None = None
    download: bool = True
    keep_extracted: bool = False
    valid: float = 0.1
    test: float = 0.1


@dataclass
class Skip:
    """A listed recording that did not make it into the corpus, and why."""

    package: str
    path: str
    label: str
    reason: str
    detail: str = ""


@dataclass
class BuildResult:
    """What :func:`build_corpus` produced."""

    root: Path
    records: list[dict]
    skipped: list[Skip]
    packages_reused: list[str]
    capped: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- selection


def clip_id(row: SourceRow) -> str:
    """A stable id from the class, package and path: ``dog_barking-1f3a5c7e9b``."""
    slug = re.sub(r"[^a-z0-9]+", "_", row.label.lower()).strip("_")
    return f"{slug}-{hashlib.sha1(f'{row.package}:{row.path}'.encode()).hexdigest()[:10]}"


def select_rows(rows: list[SourceRow], config: BuildConfig, capped: dict[str, int] | None = None) -> list[SourceRow]:
    """The rows to build: filters, reserved packages out, per-class caps applied in md5 order.

    ``capped``, when given, receives ``{label: rows left out by its cap}``.
    """
    count: dict[str, int] = defaultdict(int)
    chosen = []
    for row in sorted(rows, key=lambda r: (r.md5, r.package, r.path)):
        if row.package in RESERVED_PACKAGES:
            continue
        if config.packages is not None and row.package not in config.packages:
            continue
        if config.labels is not None and row.label not in config.labels:
            continue
        cap = config.max_per_label.get(row.label)
        if cap is not None and count[row.label] >= cap:
            if capped is not None:
                capped[row.label] = capped.get(row.label, 0) + 1
            continue
        count[row.label] += 1
        chosen.append(row)
    return chosen


# ------------------------------------------------------------------------------------------------- state


def _row_key(row: SourceRow, config: BuildConfig) -> str:
    """What a converted clip depends on besides its source bytes; a cached entry with another key is redone."""
    limit = config.max_seconds_per_label.get(row.label, config.max_seconds)
    return f"v{STATE_VERSION}|{row.label}|{limit}|{config.min_seconds}|{SAMPLE_RATE}"


def _load_state(path: Path) -> dict[str, dict]:
    """``{source path: {"key", "record" | "skip"}}`` of a package state file ({} when missing or unreadable)."""
    try:
        state = json.loads(path.read_text())
        return dict(state["clips"]) if state.get("version") == STATE_VERSION else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _is_cached(entry: dict | None, row: SourceRow, config: BuildConfig) -> bool:
    if entry is None or entry.get("key") != _row_key(row, config):
        return False
    rec = entry.get("record")
    return rec is None or (config.out / rec["path"]).is_file()


# -------------------------------------------------------------------------------------------- conversion


def _convert_all(
    jobs: list[tuple[SourceRow, Found]], config: BuildConfig, pool: ProcessPoolExecutor | None
) -> Iterator[tuple[SourceRow, Found, Converted]]:
    def args(row: SourceRow, found: Found) -> tuple:
        limit = config.max_seconds_per_label.get(row.label, config.max_seconds)
        return (found.data, found.suffix, SAMPLE_RATE, limit, config.min_seconds)

    if pool is None:
        for row, found in jobs:
            yield row, found, convert_clip(*args(row, found))
        return
    futures = [(row, found, pool.submit(convert_clip, *args(row, found))) for row, found in jobs]
    for row, found, fut in futures:
        yield row, found, fut.result()


def _record(row: SourceRow, found: Found, conv: Converted, md5: str) -> dict:
    cid = clip_id(row)
    detail = clip_detail(row.label, row.path, found.description)
    rec = {
        "id": cid,
        "path": f"audio/{cid}.flac",
        "source_package": row.package,
        "source_path": row.path,
        "license": found.license or row.license,
        "labels": [row.label],
        "captions": all_captions(row.label, detail),
        "duration": round(conv.duration, 4),
        "md5": md5,
        "split": "",
    }
    if found.description:
        rec["description"] = found.description
    return rec


def _open_package(
    package: str, rows: list[SourceRow], config: BuildConfig, scratch: Path
) -> tuple[PackageFiles | None, str]:
    """Fetch and unpack one package (retrying once over a corrupt download). Returns (files, error)."""
    debs_dir = config.debs_dir or config.out / "debs"
    for attempt in range(2):
        try:
            deb = fetch_deb(package, debs_dir) if config.download else find_deb(package, debs_dir)
            if deb is None:
                return None, "package unavailable: no .deb present and downloads are off"
            check_deb(deb)
            shutil.rmtree(scratch, ignore_errors=True)
            extract_members(deb, wanted_paths(rows), container_names(rows), scratch)
            return PackageFiles(scratch), ""
        except PackageError as err:
            shutil.rmtree(scratch, ignore_errors=True)
            deb = find_deb(package, debs_dir)
            if attempt == 0 and config.download and deb is not None:
                deb.unlink()  # a half-downloaded or corrupt file: fetch it again once
                continue
            kind = "package corrupt" if deb is not None else "package unavailable"
            return None, f"{kind}: {err}"
    return None, "package unavailable"


def _build_package(
    package: str, rows: list[SourceRow], config: BuildConfig, pool: ProcessPoolExecutor | None
) -> tuple[dict[str, dict], list[Skip]]:
    """Convert ``rows`` of one package.

    Returns:
        ``({source path: state entry}, skips)``: an entry for every row that was tried (a record, or a skip
        whose reason belongs to the row: unreadable, too short...), and skips not worth caching (the package
        could not be fetched or unpacked; those rows are tried again by the next build).
    """
    scratch = config.out / "extract" / package
    files, error = _open_package(package, rows, config, scratch)
    if files is None:
        reason, _, detail = error.partition(": ")
        return {}, [Skip(package, r.path, r.label, reason, detail) for r in rows]
    entries: dict[str, dict] = {}

    def skip(row: SourceRow, reason: str, detail: str = "") -> None:
        entries[row.path] = {
            "key": _row_key(row, config),
            "skip": asdict(Skip(package, row.path, row.label, reason, detail)),
        }

    jobs: list[tuple[SourceRow, Found]] = []
    try:
        for row in rows:
            try:
                jobs.append((row, files.read(row)))
            except MissingMember:
                skip(row, "missing in package")
            except ContainerError as err:
                skip(row, "container error", str(err))
    finally:
        files.close()
    bar = tqdm(total=len(jobs), desc=f"  {package}", unit="clip", leave=False)
    for row, found, conv in _convert_all(jobs, config, pool):
        bar.update(1)
        if conv.error:
            skip(row, conv.error, conv.detail)
            continue
        rec = _record(row, found, conv, hashlib.md5(found.data).hexdigest())
        rec["pcm_md5"] = conv.pcm_md5
        write_atomic(config.out / rec["path"], conv.flac)
        entries[row.path] = {"key": _row_key(row, config), "record": rec}
    bar.close()
    if not config.keep_extracted:
        shutil.rmtree(scratch, ignore_errors=True)
    return entries, []


# ------------------------------------------------------------------------------------------------ build


def build_corpus(config: BuildConfig) -> BuildResult:
    """Build (or resume, or confirm) the corpus described by ``config``; see the module docstring.

    Each manifest line is ``{"id", "path" (relative to the root), "source_package", "source_path",
    "license", "labels", "captions", "duration" (s), "md5" (of the source file), "split"}`` (+ ``pcm_md5``;
    ``description`` for clips whose container describes them in words; ``group`` when that description
    names the original recording the clip was edited from; clips of one group share a split).

    Raises:
        InputError: the selection is empty (bad filters or an empty sources list).
    """
    out = Path(config.out)
    config.out = out
    capped: dict[str, int] = {}
    rows = select_rows(load_sources(config.sources), config, capped)
    if not rows:
        raise InputError("nothing to build: the sources list and filters select no recording")
    by_package: dict[str, list[SourceRow]] = defaultdict(list)
    for row in rows:
        by_package[row.package].append(row)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "state").mkdir(parents=True, exist_ok=True)

    records: list[dict] = []
    skipped: list[Skip] = []
    reused: list[str] = []
    pool = ProcessPoolExecutor(max_workers=config.workers) if config.workers > 1 else None
    try:
        for package in tqdm(sorted(by_package), desc="packages", unit="pkg"):
            pkg_rows = by_package[package]
            state_path = out / "state" / f"{package}.json"
            clips = _load_state(state_path)
            todo = [row for row in pkg_rows if not _is_cached(clips.get(row.path), row, config)]
            if todo:
                new, failed = _build_package(package, todo, config, pool)
                clips.update(new)
                skipped += failed
                write_atomic(state_path, json.dumps({"version": STATE_VERSION, "clips": clips}))
            else:
                reused.append(package)
            for row in pkg_rows:
                entry = clips.get(row.path)
                if entry is not None and "record" in entry:
                    records.append(entry["record"])
                elif entry is not None:
                    skipped.append(Skip(**entry["skip"]))
    finally:
        if pool is not None:
            pool.shutdown()

    records, dupes = _drop_duplicates(records)
    skipped += dupes
    for rec in records:  # captions follow tta.data.captions even for packages built by an older version
        label = rec["labels"][0]
        rec["captions"] = all_captions(label, clip_detail(label, rec["source_path"], rec.get("description")))
    for rec in records:
        group = source_group(rec.get("description"))
        if group:
            rec["group"] = f"{rec['source_package']}:{group}"
    groups: dict[str, list[str]] = defaultdict(list)
    for rec in records:
        groups[rec.get("group", rec["md5"])] += rec["labels"]
    splits = assign_splits(groups, valid=config.valid, test=config.test)
    for rec in records:
        rec["split"] = splits[rec.get("group", rec["md5"])]
    records.sort(key=lambda r: r["id"])
    write_atomic(out / "manifest.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    _remove_orphans(out, {r["id"] for r in records})
    return BuildResult(out, records, skipped, reused, capped)


def _drop_duplicates(records: list[dict]) -> tuple[list[dict], list[Skip]]:
    """Records whose source md5 or decoded audio repeats an earlier one become "duplicate" skips (the first
    in package order, then selection order, is kept)."""
    kept, dupes, md5s, pcms = [], [], set(), set()
    for rec in records:
        pcm = rec.get("pcm_md5") or rec["id"]
        if rec["md5"] in md5s or pcm in pcms:
            dupes.append(Skip(rec["source_package"], rec["source_path"], rec["labels"][0], "duplicate", rec["md5"]))
            continue
        md5s.add(rec["md5"])
        pcms.add(pcm)
        kept.append(rec)
    return kept, dupes


def _remove_orphans(root: Path, ids: set[str]) -> None:
    """Delete temp files and FLAC files that neither the manifest nor any package state names (left by an
    older selection of a rebuilt package). Clips of packages outside this build's filters are kept."""
    for state_path in (root / "state").glob("*.json"):
        try:
            clips = json.loads(state_path.read_text())["clips"].values()
            ids |= {entry["record"]["id"] for entry in clips if "record" in entry}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    for path in (root / "audio").iterdir():
        if path.suffix == ".tmp" or (path.suffix == ".flac" and path.stem not in ids):
            path.unlink(missing_ok=True)
