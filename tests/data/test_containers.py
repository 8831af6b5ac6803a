"""Qt .rcc and OpenTTD .cat readers against files made by our own writers (and corrupt ones)."""

import numpy as np
import pytest

from tests.data.containers_writers import write_cat, write_rcc, write_sf2
from tta.data.containers import ContainerError, read_cat, read_rcc, read_sf2
from tta.data.resolve import cat_license

FILES = {"gcompris/src/activities/a/resource/dog.ogg": b"OggS" + bytes(range(200)), "top.txt": b"x", "e/empty": b""}


@pytest.mark.parametrize("compress", [True, False])
def test_rcc_round_trip(compress):
    assert read_rcc(write_rcc(FILES, compress=compress)) == FILES


def test_rcc_rejects_bad_magic_and_truncation():
    with pytest.raises(ContainerError):
        read_rcc(b"nope" + bytes(40))
    blob = write_rcc(FILES)
    with pytest.raises(ContainerError):
        read_rcc(blob[: len(blob) // 2])


def test_cat_round_trip_keeps_descriptions():
    sounds = [('"Cow". License: Creative Commons Zero 1.0.', b"RIFF1234WAVE"), ("Wind", b"RIFFabcdWAVEfmt ")]
    got = read_cat(write_cat(sounds))
    assert [(s.description, s.wav) for s in got] == sounds
    assert [s.index for s in got] == [0, 1]
    assert cat_license(got[0].description) == "CC0-1.0"
    assert cat_license("no licence here") is None


def test_cat_rejects_truncation():
    blob = write_cat([("a", b"RIFF" + bytes(100))])
    with pytest.raises(ContainerError):
        read_cat(blob[:-10])
    with pytest.raises(ContainerError):
        read_cat(b"\x01")


def test_sf2_round_trip_and_rejects_garbage():
    pcm = (np.sin(np.arange(300) / 5.0) * 1000).astype(np.int16)
    got = read_sf2(write_sf2([("Dog Bark", 22050, pcm), ("Rain", 16000, pcm[:100])]))
    assert set(got) == {"Dog Bark", "Rain"}
    assert got["Dog Bark"].sample_rate == 22050 and np.array_equal(got["Dog Bark"].pcm[:, 0], pcm)
    with pytest.raises(ContainerError):
        read_sf2(b"RIFF\x00\x00\x00\x00WAVE")
    blob = write_sf2([("x", 8000, pcm)])
    with pytest.raises(ContainerError):
        read_sf2(blob[:-60])


def test_rcc_zstd_entry_is_decoded_or_reported():
    blob = bytearray(write_rcc({"x": b"not zstd data"}, compress=False))
    blob[20 + 22 + 4 : 20 + 22 + 6] = (0x04).to_bytes(2, "big")  # flag the file node (after the root) as zstd
    with pytest.raises(ContainerError, match="zstd"):
        read_rcc(bytes(blob))
