"""Readers for the game containers the corpus pulls sounds out of.

* Qt resource files (``.rcc``, gcompris): a header, a tree of nodes, a name table and a data table. File
  entries may be stored raw, ``qCompress``-ed (4-byte big-endian length + zlib stream) or zstd-compressed.
* OpenTTD sound banks (``.cat``, openttd-opensfx): a table of ``(offset, size)`` little-endian pairs (the
  high bit of each offset set in the "new" format); at each offset a length-prefixed, NUL-terminated
  description (opensfx puts the licence in it), then ``size`` bytes of RIFF/WAVE file.
* SoundFonts (``.sf2``, fluid-soundfont-gs): RIFF ``sfbk`` with the 16-bit samples in ``sdta/smpl`` and
  46-byte sample headers in ``pdta/shdr`` (the GS set has one recording per sound effect: Dog, Rain...).

Both readers work on bytes in memory (the files are a few MB) and raise :class:`ContainerError` on anything
malformed, so a corrupt container is reported and skipped by the builder instead of crashing it.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tta.errors import TTAError

RCC_MAGIC = b"qres"
_RCC_COMPRESSED = 0x01
_RCC_DIRECTORY = 0x02
_RCC_ZSTD = 0x04


class ContainerError(TTAError):
    """A container file is truncated, has a bad magic, or an entry cannot be decompressed."""


# ----------------------------------------------------------------------------------------------- Qt .rcc


def _u16(buf: bytes, pos: int) -> int:
    if pos + 2 > len(buf):
        raise ContainerError("rcc: read past end of file")
    return struct.unpack_from(">H", buf, pos)[0]


def _u32(buf: bytes, pos: int) -> int:
    if pos + 4 > len(buf):
        raise ContainerError("rcc: read past end of file")
    return struct.unpack_from(">I", buf, pos)[0]


def _rcc_name(buf: bytes, names_off: int, name_off: int) -> str:
    pos = names_off + name_off
    length = _u16(buf, pos)
    raw = buf[pos + 6 : pos + 6 + 2 * length]  # skip the 4-byte hash
    if len(raw) != 2 * length:
        raise ContainerError("rcc: truncated name table")
    return raw.decode("utf-16-be")


def _rcc_payload(buf: bytes, data_off: int, offset: int, flags: int) -> bytes:
    pos = data_off + offset
    size = _u32(buf, pos)
    blob = buf[pos + 4 : pos + 4 + size]
    if len(blob) != size:
        raise ContainerError("rcc: truncated data entry")
    if flags & _RCC_COMPRESSED:
        if len(blob) < 4:
            raise ContainerError("rcc: compressed entry too short")
        try:
            return zlib.decompress(blob[4:])
        except zlib.error as err:
            raise ContainerError(f"rcc: bad zlib entry: {err}") from err
    if flags & _RCC_ZSTD:
        try:
            import zstandard
        except ImportError as err:
            raise ContainerError("rcc: zstd-compressed entry needs `pip install zstandard`") from err
        try:
            return zstandard.ZstdDecompressor().decompress(blob, max_output_size=1 << 30)
        except zstandard.ZstdError as err:
            raise ContainerError(f"rcc: bad zstd entry: {err}") from err
    return blob


def read_rcc(buf: bytes) -> dict[str, bytes]:
    """Every file in a Qt ``.rcc`` resource, decompressed.

    Args:
        buf: the whole ``.rcc`` file.

    Returns:
        ``{path: bytes}`` with paths like ``"gcompris/src/activities/x/resource/dog.ogg"`` (no leading slash).
    """
    if buf[:4] != RCC_MAGIC:
        raise ContainerError("rcc: bad magic (not a Qt resource file)")
    version = _u32(buf, 4)
    tree_off, data_off, names_off = _u32(buf, 8), _u32(buf, 12), _u32(buf, 16)
    node_size = 14 if version < 2 else 22
    files: dict[str, bytes] = {}
    stack: list[tuple[int, str]] = [(0, "")]
    seen: set[int] = set()
    while stack:
        index, prefix = stack.pop()
        if index in seen:
            raise ContainerError("rcc: cyclic tree")
        seen.add(index)
        pos = tree_off + index * node_size
        flags = _u16(buf, pos + 4)
        name = "" if index == 0 else _rcc_name(buf, names_off, _u32(buf, pos))
        path = f"{prefix}/{name}" if prefix else name
        if flags & _RCC_DIRECTORY:
            count, first = _u32(buf, pos + 6), _u32(buf, pos + 10)
            stack.extend((first + k, path) for k in range(count))
        else:
            files[path] = _rcc_payload(buf, data_off, _u32(buf, pos + 10), flags)
    return files


# ------------------------------------------------------------------------------------------ OpenTTD .cat


@dataclass(frozen=True)
class CatSound:
    """One sound of an OpenTTD bank: its index, written description and RIFF/WAVE bytes."""

    index: int
    description: str
    wav: bytes


def read_cat(buf: bytes) -> list[CatSound]:
    """Every sound in an OpenTTD ``.cat`` bank, in table order.

    Args:
        buf: the whole ``.cat`` file.
    """
    if len(buf) < 8:
        raise ContainerError("cat: file too short")
    table_size = struct.unpack_from("<I", buf, 0)[0] & 0x7FFFFFFF
    if table_size == 0 or table_size % 8 or table_size > len(buf):
        raise ContainerError("cat: bad offset table")
    sounds = []
    for index in range(table_size // 8):
        offset, size = struct.unpack_from("<II", buf, 8 * index)
        offset &= 0x7FFFFFFF
        if offset >= len(buf):
            raise ContainerError(f"cat: entry {index} starts past the end of the file")
        name_len = buf[offset]
        description = buf[offset + 1 : offset + 1 + name_len].split(b"\0", 1)[0].decode("latin-1").strip()
        start = offset + 1 + name_len
        wav = buf[start : start + size]
        if len(wav) != size:
            raise ContainerError(f"cat: entry {index} truncated")
        sounds.append(CatSound(index, description, wav))
    return sounds


# ------------------------------------------------------------------------------------------- SoundFont .sf2


@dataclass(frozen=True)
class Sf2Sample:
    """One sample of a SoundFont: its name, rate and 16-bit PCM (stereo pairs already joined).

    Attributes:
        name: sample name without the ``(L)``/``(R)`` suffix.
        sample_rate: Hz.
        pcm: int16 samples, shape [N, C] with C = 1 or 2.
    """

    name: str
    sample_rate: int
    pcm: np.ndarray


def _riff_chunks(buf: bytes, start: int, end: int) -> Iterator[tuple[bytes, bytes, int, int]]:
    """(list type or b"", chunk id, data offset, data size) for the chunks in ``buf[start:end]``, one level
    into LIST chunks."""
    pos = start
    while pos + 8 <= end:
        cid, size = buf[pos : pos + 4], struct.unpack_from("<I", buf, pos + 4)[0]
        if pos + 8 + size > end:
            raise ContainerError("sf2: truncated chunk")
        if cid == b"LIST":
            kind = buf[pos + 8 : pos + 12]
            sub = pos + 12
            while sub + 8 <= pos + 8 + size:
                sid, ssize = buf[sub : sub + 4], struct.unpack_from("<I", buf, sub + 4)[0]
                if sub + 8 + ssize > pos + 8 + size:
                    raise ContainerError("sf2: truncated sub-chunk")
                yield kind, sid, sub + 8, ssize
                sub += 8 + ssize + (ssize & 1)
        else:
            yield b"", cid, pos + 8, size
        pos += 8 + size + (size & 1)


def read_sf2(buf: bytes) -> dict[str, Sf2Sample]:
    """The samples of a SoundFont 2 file, keyed by name (``"Dog Bark"``; stereo ``X(L)``/``X(R)`` -> ``"X"``).

    Raises:
        ContainerError: not a RIFF ``sfbk`` file, or truncated.
    """
    if len(buf) < 12 or buf[:4] != b"RIFF" or buf[8:12] != b"sfbk":
        raise ContainerError("sf2: not a SoundFont (RIFF sfbk) file")
    chunks = {(kind, cid): (off, size) for kind, cid, off, size in _riff_chunks(buf, 12, len(buf))}
    if (b"sdta", b"smpl") not in chunks or (b"pdta", b"shdr") not in chunks:
        raise ContainerError("sf2: no sample data or sample headers")
    smpl_off, smpl_size = chunks[(b"sdta", b"smpl")]
    data = np.frombuffer(buf, dtype="<i2", count=smpl_size // 2, offset=smpl_off)
    shdr_off, shdr_size = chunks[(b"pdta", b"shdr")]
    headers = []
    for k in range(shdr_size // 46 - 1):  # the last record is the terminal "EOS"
        rec = buf[shdr_off + 46 * k : shdr_off + 46 * (k + 1)]
        name = rec[:20].split(b"\0", 1)[0].decode("latin-1").strip()
        start, end, _, _, rate = struct.unpack_from("<5I", rec, 20)
        link, kind = struct.unpack_from("<HH", rec, 42)
        if not 0 <= start <= end <= data.shape[0]:
            raise ContainerError(f"sf2: sample {name!r} points outside the sample data")
        headers.append((name, start, end, rate, link, kind))
    by_name = {h[0]: h for h in headers}
    samples: dict[str, Sf2Sample] = {}
    for name, start, end, rate, link, kind in headers:
        base = re.sub(r"\((L|R)\)$", "", name).strip()
        if kind & 0x8000 or kind == 2 or (name.endswith("(R)") and f"{name[:-3]}(L)" in by_name):
            continue  # ROM sample, or the right half of a pair (joined with its left below)
        pcm = data[start:end][:, None]
        # The right half: same name with "(R)" (the link field is unreliable in some fonts), else the link.
        right = by_name.get(f"{name[:-3]}(R)") if name.endswith("(L)") else None
        if right is None and kind == 4 and link < len(headers):
            right = headers[link]
        if right is not None:
            n = min(end - start, right[2] - right[1])
            pcm = np.stack([data[start : start + n], data[right[1] : right[1] + n]], axis=1)
        samples[base] = Sf2Sample(base, int(rate), np.ascontiguousarray(pcm))
    return samples
