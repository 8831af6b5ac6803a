"""The engine cache: ``cache_dir()/engines/<model key>/<engine>/`` holds one ONNX file per exported component and
``manifest.json`` (each file's sha256 and size, the versions that built it, each component's check against torch).

An entry is written in a temporary folder beside it and renamed into place (atomic). On load every file is
checked against the manifest; a missing or corrupt file, or a manifest from another tta engine format, torch
or runtime version, makes the entry stale: it is deleted and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

FORMAT = 1
MANIFEST = "manifest.json"


def entry_dir(key: str, engine: str) -> Path:
    from tta.paths import cache_dir

    return cache_dir() / "engines" / key / engine


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def versions(engine: str) -> dict[str, str]:
    """What an entry depends on besides the weights: the format, torch and the runtime."""
    import importlib.metadata

    import torch

    from tta.engine import RUNTIME_PACKAGE

    return {
        "format": str(FORMAT),
        "torch": torch.__version__,
        "runtime": importlib.metadata.version(RUNTIME_PACKAGE[engine]),
    }


def load_manifest(folder: Path, engine: str) -> dict | None:
    """The entry's manifest if the entry is complete, intact and current; None if it must be (re)built."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("versions") != versions(engine):
            return None
        for name, info in manifest["files"].items():
            path = folder / name
            if path.stat().st_size != info["size"] or file_sha256(path) != info["sha256"]:
                return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_entry(folder: Path, engine: str, build) -> dict:
    """Build an entry with ``build(tmp_folder) -> manifest fields`` and move it into ``folder`` atomically."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        manifest = dict(build(tmp))
        manifest["versions"] = versions(engine)
        manifest["files"] = {
            p.name: {"sha256": file_sha256(p), "size": p.stat().st_size} for p in sorted(tmp.iterdir())
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return manifest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def size_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
