"""The files ``tta eval`` reads: audio folders, prompts (a CSV/TSV/JSONL file or ``tta generate`` sidecars).

Clips are matched across folders (and to prompts) by file name without its suffix (``dog_000.wav`` ~
``dog_000.flac`` ~ ``dog_000``); sub-folders are searched too and must not repeat a name.

Prompts file formats (``--prompts FILE``), each row naming a file and its prompt, optionally a class label
(used to group the per-class CLAP scores; without it clips are grouped by prompt):

* ``.jsonl``: one object per line, ``{"file": "dog_000.wav", "prompt": "a dog barks", "label": "dog"}``.
* ``.csv`` / ``.tsv``: a header row with the columns ``file``, ``prompt`` and optionally ``label``.

Without ``--prompts``, a generated clip's prompt is read from its sidecar (``dog_000.json`` beside
``dog_000.wav``, as ``tta generate`` writes them) when there is one.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from tta.errors import InputError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def clip_key(path: str | os.PathLike) -> str:
    return Path(path).stem


def list_audio(folder: str | os.PathLike, flag: str, min_count: int = 2) -> dict[str, Path]:
    """``{key: path}`` of the audio files under ``folder`` (sorted by key); at least ``min_count`` of them."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"{flag} {folder}: no such folder")
    files: dict[str, Path] = {}
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        key = clip_key(path)
        if key in files:
            raise InputError(f"{flag} {folder}: two files are named {key!r} ({files[key]} and {path})")
        files[key] = path
    if not files:
        raise InputError(f"{flag} {folder}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    if len(files) < min_count:
        raise InputError(f"{flag} {folder}: {len(files)} audio file(s); at least {min_count} are needed")
    return dict(sorted(files.items()))


def _rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise InputError(f"--prompts {path}, line {n}: not JSON ({err.msg})") from err
        return rows
    if path.suffix.lower() in (".csv", ".tsv"):
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        return list(csv.DictReader(text.splitlines(), delimiter=delimiter))
    raise InputError(f"--prompts {path}: use a .jsonl, .csv or .tsv file")


def read_prompts(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """``{clip key: {"prompt": str, "label": str (optional)}}`` from a prompts file (see the module docstring)."""
    path = Path(path).expanduser()
    try:
        rows = _rows(path)
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read --prompts {path}: {err}") from err
    out: dict[str, dict[str, str]] = {}
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not row.get("file") or not str(row.get("prompt") or "").strip():
            raise InputError(f"--prompts {path}, row {n}: needs a 'file' and a non-empty 'prompt'")
        entry = {"prompt": str(row["prompt"]).strip()}
        if row.get("label"):
            entry["label"] = str(row["label"])
        out[clip_key(row["file"])] = entry
    if not out:
        raise InputError(f"--prompts {path}: no rows")
    return out


def sidecar_prompts(files: dict[str, Path]) -> dict[str, dict[str, str]]:
    """Prompts from ``tta generate`` sidecars (``<name>.json`` with a "prompt") beside the audio files."""
    out = {}
    for key, path in files.items():
        sidecar = path.with_suffix(".json")
        if not sidecar.is_file():
            continue
        try:
            prompt = json.loads(sidecar.read_text(encoding="utf-8")).get("prompt")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(prompt, str) and prompt.strip():
            out[key] = {"prompt": prompt.strip()}
    return out
