"""Sources list and Debian fetching: reserved packages, apt-get failures (a fake apt-get, no network)."""

import os
import stat

import pytest

from tta.data.corpus import BuildConfig, build_corpus
from tta.data.sources import RESERVED_PACKAGES, PackageError, fetch_deb, load_sources


def test_shipped_sources_exclude_reserved_packages():
    rows = load_sources()
    assert rows and not {r.package for r in rows} & RESERVED_PACKAGES
    assert {r.kind for r in rows} == {"file", "zip", "rcc", "cat", "sf2"}


def test_reserved_rows_are_dropped_and_never_fetched(fixture_archive, tmp_path):
    assert "widelands-data" not in {r.package for r in load_sources(fixture_archive["sources"])}
    with pytest.raises(PackageError, match="reserved"):
        fetch_deb("widelands-data", tmp_path)
    with pytest.raises(PackageError, match="reserved"):
        fetch_deb("flightgear-data-base", tmp_path)


def _fake_apt(bin_dir, archive_dir):
    """An `apt-get download PKG` that copies PKG's .deb from ``archive_dir``, or fails like apt does."""
    script = bin_dir / "apt-get"
    script.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = download ] || exit 2\nfor f in "{archive_dir}/$2"_*.deb; do\n'
        '  [ -e "$f" ] || { echo "E: Unable to locate package $2" >&2; exit 100; }\n  cp "$f" .\ndone\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_build_downloads_with_apt_get(fixture_archive, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_apt(bin_dir, fixture_archive["debs"])
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "corpus"
    config = BuildConfig(out=out, sources=fixture_archive["sources"], workers=1, packages=["fakesounds", "missingpkg"])
    result = build_corpus(config)
    assert (out / "debs" / "fakesounds_1.0_all.deb").is_file()
    assert not list((out / "debs").glob(".partial-*"))
    assert result.records
    reasons = {s.path: (s.reason, s.detail) for s in result.skipped}
    reason, detail = reasons["usr/share/missing/siren.wav"]
    assert reason == "package unavailable" and "Unable to locate" in detail


def test_half_downloaded_deb_is_fetched_again(fixture_archive, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_apt(bin_dir, fixture_archive["debs"])
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "corpus"
    good = (fixture_archive["debs"] / "fakesounds_1.0_all.deb").read_bytes()
    (out / "debs").mkdir(parents=True)
    (out / "debs" / "fakesounds_1.0_all.deb").write_bytes(good[: len(good) // 3])
    result = build_corpus(BuildConfig(out=out, sources=fixture_archive["sources"], workers=1, packages=["fakesounds"]))
    assert (out / "debs" / "fakesounds_1.0_all.deb").read_bytes() == good
    assert result.records and not any(s.reason.startswith("package") for s in result.skipped)
