"""What a retrieval index is built from: the corpus manifest, or any folder of recordings with optional captions.

Captions of a folder's recordings come, first found wins, from

1. a captions file (``--captions FILE``): a CSV with a file column (``file``, ``path``, ``filename`` or ``name``)
   and a caption column (``caption``, ``text``, ``description`` or ``label``; several rows per file add captions),
   or a JSON object ``{"file": "caption" | ["caption", ...]}`` or a list of ``{"file": ..., "caption": ...}``;
   files are matched by path relative to the folder, then by name, then by stem;
2. a ``NAME.txt`` beside ``NAME.wav`` (one caption a line);
3. the file name itself, when asked (``--captions-from-names``): ``dog_bark-03.wav`` -> "dog bark".

A recording without captions is still indexed: it is found by its CLAP audio embedding.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from tta.errors import InputError

SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
FILE_COLUMNS = ("file", "path", "filename", "name", "file_name", "audio")
CAPTION_COLUMNS = ("caption", "text", "description", "label", "captions")


def manifest_entries(source: Path, splits: str | None) -> list[dict]:
    """Entries of the corpus clips in ``splits`` ('+'-joined; None: all) of ``source`` (``manifest.jsonl`` or the
    corpus root holding it): absolute path, id, captions, labels, group (the source recording)."""
    manifest = source / "manifest.jsonl" if source.is_dir() else source
    root = manifest.parent
    try:
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read the corpus manifest {manifest}: {err}") from err
    wanted = set(splits.split("+")) if splits else None
    entries = [
        {
            "path": str((root / r["path"]).resolve()),
            "id": r["id"],
            "captions": list(r.get("captions") or []),
            "labels": list(r.get("labels") or []),
            "group": r.get("group") or r["id"],
        }
        for r in rows
        if wanted is None or r.get("split") in wanted
    ]
    if not entries:
        raise InputError(f"{manifest}: no clips" + (f" in split {splits!r}" if splits else ""))
    return entries


def folder_entries(folder: Path, captions_file: Path | None = None, from_names: bool = False) -> list[dict]:
    """Entries of the audio files under ``folder`` (recursively), captioned as the module docstring says."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no audio files ({', '.join(SUFFIXES)}) in it or below it")
    table = read_captions_file(captions_file) if captions_file else {}
    entries = []
    for path in files:
        rel = path.relative_to(folder).as_posix()
        caps = table.get(rel) or table.get(path.name) or table.get(path.stem) or sidecar_captions(path)
        if not caps and from_names:
            caps = [name] if (name := caption_from_name(path)) else []
        entries.append({"path": str(path.resolve()), "id": rel, "captions": caps, "labels": [], "group": rel})
    return entries


def sidecar_captions(path: Path) -> list[str]:
    """The non-empty lines of ``path`` with a ``.txt`` suffix, or [] when there is none."""
    text = path.with_suffix(".txt")
    if not text.is_file():
        return []
    return [line.strip() for line in text.read_text(errors="replace").splitlines() if line.strip()]


def caption_from_name(path: Path) -> str:
    """``Dog_Bark-03.wav`` -> ``"dog bark"``: the stem's words (camelCase split), digits and separators dropped."""
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", path.stem)
    words = re.sub(r"[^A-Za-z]+", " ", words)
    return " ".join(words.lower().split())


def read_captions_file(path: Path) -> dict[str, list[str]]:
    """file key -> captions, from a CSV or JSON captions file (see the module docstring)."""
    if not path.is_file():
        raise InputError(f"captions file {path} not found")
    table: dict[str, list[str]] = {}

    def add(key, caption) -> None:
        caps = [caption] if isinstance(caption, str) else list(caption or [])
        for cap in caps:
            if not isinstance(cap, str):
                raise InputError(f"{path}: captions must be strings, got {cap!r} for {key!r}")
            if cap.strip():
                table.setdefault(str(key).strip(), []).append(cap.strip())

    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not valid JSON ({err})") from err
        if isinstance(data, dict):
            for key, caption in data.items():
                add(key, caption)
        elif isinstance(data, list) and all(isinstance(row, dict) for row in data):
            for row in data:
                add(_pick(row, FILE_COLUMNS, path), _pick(row, CAPTION_COLUMNS, path))
        else:
            raise InputError(f"{path}: expected an object of file -> caption(s) or a list of objects")
    else:
        with open(path, newline="", errors="replace") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise InputError(f"{path}: an empty CSV (a header row with file and caption columns is needed)")
        for row in rows:
            add(_pick(row, FILE_COLUMNS, path), _pick(row, CAPTION_COLUMNS, path))
    if not table:
        raise InputError(f"{path}: no captions in it")
    return table


def _pick(row: dict, names: tuple[str, ...], path: Path):
    lowered = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    for name in names:
        if name in lowered and lowered[name] not in (None, ""):
            return lowered[name]
    raise InputError(f"{path}: a row without any of the columns {', '.join(names)}: {row}")
