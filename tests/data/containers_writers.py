"""Tiny writers of the corpus' game containers (``.rcc``, ``.cat``, ``.sf2``), only for test fixtures: they make
files the readers in :mod:`tta.data.containers` must take apart again."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from tta.data.containers import _RCC_COMPRESSED, _RCC_DIRECTORY, RCC_MAGIC


@dataclass
class _Node:
    name: str
    children: dict[str, _Node] | None = None  # None for a file
    data: bytes = b""


def write_rcc(files: dict[str, bytes], compress: bool = True) -> bytes:
    """Build a version-2 Qt ``.rcc`` holding ``files`` (``{path: bytes}``); used to make test fixtures.

    With ``compress`` each entry is stored qCompress-style (4-byte big-endian length + zlib stream).
    """
    root = _Node("", {})
    for path, data in files.items():
        node = root
        parts = [p for p in path.split("/") if p]
        for part in parts[:-1]:
            node = node.children.setdefault(part, _Node(part, {}))
        node.children[parts[-1]] = _Node(parts[-1], None, data)

    # Breadth-first numbering: a directory's children are consecutive nodes.
    order: list[_Node] = [root]
    first_child: dict[int, int] = {}
    i = 0
    while i < len(order):
        node = order[i]
        if node.children is not None:
            first_child[id(node)] = len(order)
            order.extend(sorted(node.children.values(), key=lambda n: n.name))
        i += 1

    names, data, tree = bytearray(), bytearray(), bytearray()
    for node in order:
        name_off = len(names)
        encoded = node.name.encode("utf-16-be")
        names += struct.pack(">HI", len(node.name), 0) + encoded
        if node.children is not None:
            tree += struct.pack(">IHII", name_off, _RCC_DIRECTORY, len(node.children), first_child[id(node)])
        else:
            payload = struct.pack(">I", len(node.data)) + zlib.compress(node.data) if compress else node.data
            tree += struct.pack(">IHHHI", name_off, _RCC_COMPRESSED if compress else 0, 0, 0, len(data))
            data += struct.pack(">I", len(payload)) + payload
        tree += struct.pack(">Q", 0)  # last-modified (version 2)
    header_size = 20
    tree_off = header_size
    data_off = tree_off + len(tree)
    names_off = data_off + len(data)
    header = RCC_MAGIC + struct.pack(">IIII", 2, tree_off, data_off, names_off)
    return bytes(header + tree + data + names)


def write_cat(sounds: list[tuple[str, bytes]]) -> bytes:
    """Build an OpenTTD ``.cat`` bank from ``[(description, wav_bytes), ...]``; used to make test fixtures."""
    table_size = 8 * len(sounds)
    table, body = bytearray(), bytearray()
    for description, wav in sounds:
        name = description.encode("latin-1") + b"\0"
        table += struct.pack("<II", (table_size + len(body)) | 0x80000000, len(wav))
        body += bytes([len(name)]) + name + wav
    return bytes(table + body)


def write_sf2(samples: list[tuple[str, int, np.ndarray]]) -> bytes:
    """A minimal SoundFont 2 holding mono int16 ``[(name, rate, pcm [N]), ...]``; used to make test fixtures.

    Only the chunks :func:`read_sf2` needs (``smpl``, ``shdr``) are written.
    """
    smpl, shdr = bytearray(), bytearray()
    for name, rate, pcm in samples:
        start = len(smpl) // 2
        smpl += np.asarray(pcm, dtype="<i2").tobytes() + bytes(92)  # 46 zero samples after each, as in the spec
        end = start + len(pcm)
        shdr += name.encode("latin-1")[:20].ljust(20, b"\0")
        shdr += struct.pack("<5IBbHH", start, end, start, end, rate, 60, 0, 0, 1)
    shdr += b"EOS".ljust(20, b"\0") + bytes(26)

    def chunk(cid: bytes, body: bytes) -> bytes:
        return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")

    sdta = chunk(b"LIST", b"sdta" + chunk(b"smpl", bytes(smpl)))
    pdta = chunk(b"LIST", b"pdta" + chunk(b"shdr", bytes(shdr)))
    return chunk(b"RIFF", b"sfbk" + sdta + pdta)
