"""The list of recordings to extract, and fetching/unpacking the Debian packages that hold them.

Packages are fetched with ``apt-get download`` (no system install, no root needed beyond apt's own cache)
into a folder of ``.deb`` files, and unpacked by streaming ``dpkg-deb --fsys-tarfile`` through Python's
``tarfile`` so that only the wanted members (and the containers that hold sounds: 0ad's ``public.zip``,
gcompris' ``.rcc`` files, openttd's ``.cat``) are written to disk.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tta.errors import InputError, TTAError

RESERVED_PACKAGES = frozenset({"flightgear-data-base", "widelands-data"})
"""Kept for independent evaluation: never fetched, never in any corpus (see DATA.md)."""

_COLUMNS = ("label", "package", "path", "duration", "md5", "license")


class PackageError(TTAError):
    """A package cannot be fetched or unpacked (unavailable, half-downloaded, corrupt)."""


@dataclass(frozen=True)
class SourceRow:
    """One recording inside a Debian package.

    Attributes:
        label: canonical class name (see :data:`tta.data.captions.CLASSES`).
        package: Debian package name.
        path: where inside the package: a plain path, ``public.zip:MEMBER``, ``rcc:ARCHIVE/PATH``,
            ``cat:NN.wav`` or ``sf2:SAMPLE NAME``.
        duration: seconds, as listed (before any cut).
        md5: md5 of the source file bytes, as listed.
        license: the package's licence (openttd clips get their own from the bank at build time).
    """

    label: str
    package: str
    path: str
    duration: float
    md5: str
    license: str

    @property
    def kind(self) -> str:
        """``"file"``, ``"zip"``, ``"rcc"``, ``"cat"`` or ``"sf2"``."""
        if self.path.startswith("rcc:"):
            return "rcc"
        if self.path.startswith("cat:"):
            return "cat"
        if self.path.startswith("sf2:"):
            return "sf2"
        if ".zip:" in self.path:
            return "zip"
        return "file"


def default_sources_path() -> Path:
    """The ``sources.tsv`` shipped with tta."""
    return Path(str(resources.files("tta.data").joinpath("sources.tsv")))


def load_sources(path: str | Path | None = None) -> list[SourceRow]:
    """Read a sources TSV (columns ``label package path duration md5 license``; ``#`` lines are comments).

    Rows of :data:`RESERVED_PACKAGES` are dropped here, whatever the file says.

    Raises:
        InputError: the file is missing or lacks a column.
    """
    path = Path(path) if path is not None else default_sources_path()
    if not path.is_file():
        raise InputError(f"sources list not found: {path}")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)), delimiter="\t", quoting=csv.QUOTE_NONE)
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    rows = []
    for rec in reader:
        if rec["package"] in RESERVED_PACKAGES:
            continue
        rows.append(
            SourceRow(
                label=rec["label"],
                package=rec["package"],
                path=rec["path"],
                duration=float(rec["duration"] or 0.0),
                md5=rec["md5"],
                license=rec["license"],
            )
        )
    return rows


# --------------------------------------------------------------------------------------------- fetching


def find_deb(package: str, debs_dir: Path) -> Path | None:
    """The newest ``<package>_*.deb`` already in ``debs_dir``, if any."""
    found = sorted(Path(debs_dir).glob(f"{package}_*.deb"))
    return found[-1] if found else None


def fetch_deb(package: str, debs_dir: str | Path) -> Path:
    """Download ``package`` with ``apt-get download`` into ``debs_dir`` (reusing a ``.deb`` already there).

    The download goes to a temporary sub-folder first, so an interrupted download never leaves a
    half-written ``.deb`` under the final name.

    Raises:
        PackageError: the package is reserved, apt-get is missing, or apt cannot download it.
    """
    if package in RESERVED_PACKAGES:
        raise PackageError(f"{package} is reserved for evaluation and is never fetched")
    debs_dir = Path(debs_dir)
    debs_dir.mkdir(parents=True, exist_ok=True)
    existing = find_deb(package, debs_dir)
    if existing is not None:
        return existing
    if shutil.which("apt-get") is None:
        raise PackageError(f"{package}: not in {debs_dir} and apt-get is not available to download it")
    tmp = debs_dir / f".partial-{package}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        proc = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = sorted(tmp.glob(f"{package}_*.deb"))
        if proc.returncode != 0 or not debs:
            last = (proc.stderr.strip().splitlines() or ["no .deb written"])[-1]
            hint = " (not in apt's lists: run `apt-get update`, with Debian main enabled)" if "locate" in last else ""
            raise PackageError(f"{package}: apt-get download failed: {last}{hint}")
        final = debs_dir / debs[-1].name
        debs[-1].replace(final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_deb(deb: Path) -> None:
    """Cheap sanity check of a ``.deb`` (ar header and control member) with ``dpkg-deb --info``.

    Raises:
        PackageError: the file is not a readable Debian package (e.g. truncated before the control part).
    """
    proc = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unreadable"])[-1]
        raise PackageError(f"{deb.name}: not a valid .deb ({last})")


# -------------------------------------------------------------------------------------------- unpacking


def _norm(name: str) -> str:
    return name[2:] if name.startswith("./") else name.lstrip("/")


def extract_members(
    deb: str | Path, wanted: Iterable[str], container_names: Iterable[str], dest: str | Path
) -> set[str]:
    """Stream the package's file tree and write the wanted members under ``dest``.

    Args:
        deb: the ``.deb`` file.
        wanted: exact paths inside the package (no leading ``./`` or ``/``).
        container_names: base names (or glob patterns) of container files to extract wherever they are
            (``public.zip``, ``explore_farm_animals.rcc``, ``*.cat``...).
        dest: output folder; members keep their relative paths.

    Returns:
        The set of package paths written.

    Raises:
        PackageError: dpkg-deb cannot read the package or the stream ends early (half-downloaded file).
    """
    if shutil.which("dpkg-deb") is None:
        raise PackageError("dpkg-deb is not installed (apt-get install dpkg)")
    wanted, names, dest = set(wanted), set(container_names), Path(dest)
    written: set[str] = set()
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                name = _norm(member.name)
                base = name.rsplit("/", 1)[-1]
                if not member.isfile() or (
                    name not in wanted and not any(fnmatch.fnmatchcase(base, n) for n in names)
                ):
                    continue
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                with open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                written.add(name)
    except (tarfile.TarError, OSError, EOFError) as err:
        proc.kill()
        raise PackageError(f"{Path(deb).name}: cannot unpack ({err})") from err
    finally:
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        code = proc.wait()
    if code != 0:
        last = (stderr.strip().splitlines() or [f"dpkg-deb exit {code}"])[-1]
        raise PackageError(f"{Path(deb).name}: cannot unpack ({last})")
    return written
