"""Finding the bytes of one listed recording inside an unpacked package folder.

A :class:`PackageFiles` wraps the folder a package was unpacked to and opens containers lazily (each one
once): ``zip`` members are read with :mod:`zipfile` without unpacking the archive, ``.rcc`` and ``.cat``
files and SoundFont samples with :mod:`tta.data.containers` (a SoundFont sample is handed on as WAV bytes).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from tta.data.containers import CatSound, ContainerError, Sf2Sample, read_cat, read_rcc, read_sf2
from tta.data.sources import SourceRow

_LICENSE_RE = re.compile(r"License:\s*(.+?)\.?\s*$", re.I)
_SPDX = {
    "creative commons zero 1.0": "CC0-1.0",
    "creative commons attribution 3.0 unported": "CC-BY-3.0",
    "creative commons attribution-sharealike 3.0 unported": "CC-BY-SA-3.0",
}


class MissingMember(LookupError):
    """The listed path is not in the package (or its container)."""


@dataclass(frozen=True)
class Found:
    """The bytes of one recording, plus what its container says about it."""

    data: bytes
    suffix: str
    description: str | None = None
    license: str | None = None


def container_names(rows: list[SourceRow]) -> set[str]:
    """Base names of the container files the rows need (``public.zip``, ``<name>.rcc``, ``*.cat``)."""
    names = set()
    for row in rows:
        if row.kind == "zip":
            names.add(row.path.split(":", 1)[0].rsplit("/", 1)[-1])
        elif row.kind == "rcc":
            names.add(row.path[4:].split("/", 1)[0] + ".rcc")
        elif row.kind == "cat":
            names.add("*.cat")
        elif row.kind == "sf2":
            names.add("*.sf2")
    return names


def wanted_paths(rows: list[SourceRow]) -> set[str]:
    """Plain package paths the rows need."""
    return {row.path for row in rows if row.kind == "file"}


def cat_license(description: str) -> str | None:
    """The licence an OpenTTD description names ("... License: Creative Commons Zero 1.0."), SPDX-style."""
    match = _LICENSE_RE.search(description)
    if not match:
        return None
    text = match.group(1).strip().rstrip(".")
    return _SPDX.get(text.lower(), text)


class PackageFiles:
    """The files of one unpacked package folder, containers included."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._zips: dict[str, zipfile.ZipFile] = {}
        self._rccs: dict[str, dict[str, bytes]] = {}
        self._cats: dict[int, CatSound] | None = None
        self._sf2: dict[str, Sf2Sample] | None = None

    def close(self) -> None:
        for zf in self._zips.values():
            zf.close()
        self._zips.clear()
        self._rccs.clear()

    def _find(self, basename: str) -> list[Path]:
        return sorted(p for p in self.root.rglob(basename) if p.is_file())

    def _zip_member(self, row: SourceRow) -> bytes:
        archive, member = row.path.split(":", 1)
        name = archive.rsplit("/", 1)[-1]
        for path in self._find(name):
            key = str(path)
            if key not in self._zips:
                try:
                    self._zips[key] = zipfile.ZipFile(path)
                except zipfile.BadZipFile as err:
                    raise ContainerError(f"{path.name}: bad zip file ({err})") from err
            try:
                return self._zips[key].read(member)
            except KeyError:
                continue
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise ContainerError(f"{path.name}: cannot read {member} ({err})") from err
        raise MissingMember(row.path)

    def _rcc_member(self, row: SourceRow) -> bytes:
        rest = row.path[4:]
        archive = rest.split("/", 1)[0] + ".rcc"
        for path in self._find(archive):
            key = str(path)
            if key not in self._rccs:
                self._rccs[key] = read_rcc(path.read_bytes())
            for name, data in self._rccs[key].items():
                if name == rest or name.endswith("/" + rest):
                    return data
        raise MissingMember(row.path)

    def _cat_member(self, row: SourceRow) -> CatSound:
        if self._cats is None:
            cats = self._find("*.cat")
            if not cats:
                raise MissingMember(row.path)
            self._cats = {s.index: s for s in read_cat(cats[0].read_bytes())}
        match = re.fullmatch(r"cat:(\d+)\.wav", row.path)
        if not match or int(match.group(1)) not in self._cats:
            raise MissingMember(row.path)
        return self._cats[int(match.group(1))]

    def _sf2_member(self, row: SourceRow) -> bytes:
        if self._sf2 is None:
            self._sf2 = {}
            for path in self._find("*.sf2"):
                self._sf2.update(read_sf2(path.read_bytes()))
        sample = self._sf2.get(row.path[4:])
        if sample is None:
            raise MissingMember(row.path)
        buf = io.BytesIO()
        sf.write(buf, sample.pcm, sample.sample_rate, format="WAV", subtype="PCM_16")
        return buf.getvalue()

    def read(self, row: SourceRow) -> Found:
        """The bytes of ``row``.

        Raises:
            MissingMember: the path is not in the package.
            ContainerError: its container is corrupt.
        """
        suffix = "." + row.path.rsplit(".", 1)[-1] if "." in row.path.rsplit("/", 1)[-1] else ""
        if row.kind == "zip":
            return Found(self._zip_member(row), suffix)
        if row.kind == "rcc":
            return Found(self._rcc_member(row), suffix)
        if row.kind == "sf2":
            return Found(self._sf2_member(row), ".wav")
        if row.kind == "cat":
            sound = self._cat_member(row)
            return Found(sound.wav, ".wav", sound.description, cat_license(sound.description))
        path = self.root / row.path
        if not path.is_file():
            raise MissingMember(row.path)
        return Found(path.read_bytes(), suffix)
