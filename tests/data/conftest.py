"""A tiny fixture archive for the corpus builder: generated sounds inside real ``.deb`` files.

``fixture_archive`` builds, under a temp folder:

* ``debs/fakesounds_1.0_all.deb``: plain wav/ogg files, a ``public.zip`` (zip members), a gcompris-style
  ``.rcc`` and an openttd-style ``.cat`` (written by ``tta.data.containers``), a duplicate file, a
  zero-length file, a file of garbage bytes and a clip shorter than ``--min-seconds``;
* ``debs/brokenpkg_1.0_all.deb``: a real package cut in half (a half-downloaded file);
* a ``sources.tsv`` listing all that, plus a package that is not there at all (``missingpkg``) and rows of
  the reserved ``widelands-data`` package, which must never be touched.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.data.containers_writers import write_cat, write_rcc, write_sf2

SR = 22050


def tone(seconds: float, freq: float, sr: int = SR, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A sine of ``seconds`` s (+ optional noise), float32 [N]."""
    t = np.arange(int(seconds * sr)) / sr
    wav = 0.3 * np.sin(2 * np.pi * freq * t)
    if noise:
        wav = wav + noise * np.random.default_rng(seed).standard_normal(t.shape[0])
    return wav.astype(np.float32)


def wav_bytes(wav: np.ndarray, sr: int = SR, fmt: str = "WAV", channels: int = 1) -> bytes:
    buf = io.BytesIO()
    data = np.stack([wav] * channels, axis=1) if channels > 1 else wav
    sf.write(buf, data, sr, format=fmt)
    return buf.getvalue()


def build_deb(root: Path, package: str, files: dict[str, bytes], out_dir: Path) -> Path:
    """A minimal ``<package>_1.0_all.deb`` holding ``files`` (``{path inside package: bytes}``)."""
    tree = root / f"tree-{package}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test fixture\n"
    )
    for rel, data in files.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    deb = out_dir / f"{package}_1.0_all.deb"
    subprocess.run(
        ["dpkg-deb", "-Znone", "--root-owner-group", "--build", str(tree), str(deb)], check=True, capture_output=True
    )
    shutil.rmtree(tree)
    return deb


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


ROWS = [
    # label, package, path, duration, md5, license
    ("dog barking", "fakesounds", "usr/share/fake/dog1.wav", 1.0),
    ("dog barking", "fakesounds", "usr/share/fake/dog2.ogg", 1.2),
    ("dog barking", "fakesounds", "usr/share/fake/dog3.wav", 0.8),
    ("dog barking", "fakesounds", "usr/share/fake/dog_copy.wav", 1.0),  # same bytes as dog1: duplicate
    ("rain", "fakesounds", "usr/share/fake/rain_long.wav", 6.0),
    ("rain", "fakesounds", "public.zip:audio/weather/rain_a.wav", 3.0),
    ("rain", "fakesounds", "public.zip:audio/weather/rain_b.wav", 3.0),
    ("wind", "fakesounds", "public.zip:audio/weather/windleaves_1.wav", 2.5),
    ("footsteps", "fakesounds", "usr/share/fake/fs_gravel3.wav", 0.6),
    ("footsteps", "fakesounds", "rcc:walk/resource/fs_snow_1.wav", 0.6),
    ("footsteps", "fakesounds", "rcc:walk/resource/fs_grass_2.wav", 0.7),
    ("train", "fakesounds", "cat:00.wav", 1.5),
    ("train", "fakesounds", "cat:01.wav", 1.5),
    ("cow mooing", "fakesounds", "cat:02.wav", 1.0),
    ("dog barking", "fakesounds", "sf2:Dog Bark", 0.5),
    ("speech", "fakesounds", "usr/share/fake/hello.wav", 1.0),
    ("music", "fakesounds", "usr/share/fake/song.wav", 7.0),
    ("bell ringing", "fakesounds", "usr/share/fake/empty.wav", 0.0),  # zero-length
    ("bell ringing", "fakesounds", "usr/share/fake/garbage.ogg", 1.0),  # not audio
    ("bell ringing", "fakesounds", "usr/share/fake/tick.wav", 0.01),  # shorter than min-seconds
    ("bell ringing", "fakesounds", "usr/share/fake/not_there.wav", 1.0),  # listed, not in the package
    ("thunder", "brokenpkg", "usr/share/broken/thunder.wav", 2.0),  # half-downloaded .deb
    ("siren", "missingpkg", "usr/share/missing/siren.wav", 2.0),  # package not available
    ("dog barking", "widelands-data", "usr/share/widelands/dog.wav", 1.0),  # reserved: never used
]


def fixture_files() -> dict[str, bytes]:
    dog1 = wav_bytes(tone(1.0, 440, noise=0.05, seed=1))
    rcc = write_rcc(
        {
            "gcompris/src/activities/walk/resource/fs_snow_1.wav": wav_bytes(tone(0.6, 300, noise=0.2, seed=2)),
            "gcompris/src/activities/walk/resource/fs_grass_2.wav": wav_bytes(tone(0.7, 320, noise=0.2, seed=3)),
        }
    )
    cat = write_cat(
        [
            (
                '"Steam train departure". Original "train horn.wav" by "x". License: Creative Commons Zero 1.0.',
                wav_bytes(tone(1.5, 200)),
            ),
            (
                '"Diesel train". Original "Train Horn.wav". License: Creative Commons Attribution 3.0 Unported.',
                wav_bytes(tone(1.5, 210)),
            ),
            ('"Cow". License: Creative Commons Zero 1.0.', wav_bytes(tone(1.0, 150, sr=11025), sr=11025)),
        ]
    )
    public = _zip(
        {
            "audio/weather/rain_a.wav": wav_bytes(tone(3.0, 1000, noise=0.3, seed=4)),
            "audio/weather/rain_b.wav": wav_bytes(tone(3.0, 1100, noise=0.3, seed=5)),
            "audio/weather/windleaves_1.wav": wav_bytes(tone(2.5, 90, noise=0.3, seed=6)),
        }
    )
    return {
        "usr/share/fake/dog1.wav": dog1,
        "usr/share/fake/dog2.ogg": wav_bytes(tone(1.2, 500, sr=16000), sr=16000, fmt="OGG"),
        "usr/share/fake/dog3.wav": wav_bytes(tone(0.8, 550, sr=44100), sr=44100, channels=2),
        "usr/share/fake/dog_copy.wav": dog1,
        "usr/share/fake/rain_long.wav": wav_bytes(tone(6.0, 1200, noise=0.3, seed=7)),
        "usr/share/fake/fs_gravel3.wav": wav_bytes(tone(0.6, 350, noise=0.2, seed=8)),
        "usr/share/fake/hello.wav": wav_bytes(tone(1.0, 180)),
        "usr/share/fake/song.wav": wav_bytes(tone(7.0, 262)),
        "usr/share/fake/empty.wav": b"",
        "usr/share/fake/garbage.ogg": b"this is not an ogg file at all" * 10,
        "usr/share/fake/tick.wav": wav_bytes(tone(0.01, 1000)),
        "usr/share/games/fake/data/public.zip": public,
        "usr/share/fake/rcc/walk.rcc": rcc,
        "usr/share/fake/sfx/fake.cat": cat,
        "usr/share/sounds/sf2/Fake_GS.sf2": write_sf2(
            [
                ("Dog Bark", 22050, (tone(0.5, 700) * 20000).astype("int16")),
                ("Noise", 22050, (tone(0.5, 50) * 9000).astype("int16")),
            ]
        ),
    }


def write_sources(path: Path) -> Path:
    lines = ["# fixture", "label\tpackage\tpath\tduration\tmd5\tlicense"]
    for k, (label, pkg, p, dur) in enumerate(ROWS):
        lines.append(f"{label}\t{pkg}\t{p}\t{dur}\t{k:032x}\tTEST-LICENSE-{pkg}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def fixture_archive(tmp_path_factory) -> dict[str, Path]:
    """``{"debs": folder of .deb files, "sources": sources TSV}`` (see the module docstring)."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb not installed")
    root = tmp_path_factory.mktemp("archive")
    debs = root / "debs"
    build_deb(root, "fakesounds", fixture_files(), debs)
    broken = build_deb(root, "brokenpkg", {"usr/share/broken/thunder.wav": wav_bytes(tone(2.0, 60, noise=0.5))}, debs)
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    return {"debs": debs, "sources": write_sources(root / "sources.tsv")}


@pytest.fixture(scope="session")
def built_corpus(fixture_archive, tmp_path_factory) -> Path:
    """The fixture archive built once (offline, one process) into a corpus root."""
    from dataclasses import asdict

    from tta.data.corpus import BuildConfig, build_corpus
    from tta.data.summary import summarize, write_reports

    out = tmp_path_factory.mktemp("corpus")
    result = build_corpus(
        BuildConfig(
            out=out, debs_dir=fixture_archive["debs"], sources=fixture_archive["sources"], workers=1, download=False
        )
    )
    skipped = [asdict(s) for s in result.skipped]
    write_reports(out, summarize(result.records, skipped), skipped)
    return out
