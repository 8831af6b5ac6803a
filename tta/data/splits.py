"""Train / valid / test splits by source recording, and the class pairs held out of training mixtures.

A recording is identified by the md5 of its source file: every clip cut from it, and any copy of it, lands
in the same split, so no recording leaks from train into test. The split of an md5 is a deterministic hash
(80/10/10 by default), then nudged per class: a class with fewer than 3 recordings stays in train; with 3-4
it has exactly one in test (none in valid); with 5-9 exactly one in test and one in valid; with 10 or more
at least one in each. So every class keeps most of its recordings for training. A class with one long recording (e.g. a 120 s rain
ambience) therefore has all of it in a single split; windows of it are never spread across splits.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

SPLITS = ("train", "valid", "test")

HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = (
    ("dog barking", "rain"),
    ("footsteps", "wind"),
    ("birds chirping", "flowing water"),
    ("car horn", "rain"),
    ("speech", "ocean waves"),
)
"""Class pairs (either order) that training mixtures never combine, to test composition at evaluation."""


_ORIGINAL_RE = re.compile(r'Original\s+"([^"]+)"', re.I)


def source_group(description: str | None) -> str | None:
    """The original recording a clip was edited from, when its written description names one.

    OpenTTD's descriptions say e.g. ``Original "steam train horn 01.wav" by ...``; two sounds cut from that
    file are one recording for splitting purposes. Returns the first named original, lower-cased, or None.
    """
    match = _ORIGINAL_RE.search(description or "")
    return match.group(1).strip().lower() if match else None


def is_held_out(label_a: str, label_b: str, pairs: Iterable[tuple[str, str]] = HELD_OUT_PAIRS) -> bool:
    """Whether the unordered pair ``{label_a, label_b}`` is one of ``pairs``."""
    return any({label_a, label_b} == {a, b} for a, b in pairs)


def hash_unit(key: str) -> float:
    """A deterministic number in [0, 1) from a string (first 8 bytes of its sha256)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64


def split_of(md5: str, valid: float = 0.1, test: float = 0.1) -> str:
    """The split an md5 hashes to, before per-class balancing."""
    u = hash_unit(md5)
    return "test" if u < test else "valid" if u < test + valid else "train"


def assign_splits(labels_by_md5: Mapping[str, Iterable[str]], valid: float = 0.1, test: float = 0.1) -> dict[str, str]:
    """The split of every recording.

    Args:
        labels_by_md5: ``{md5: labels}`` for every distinct source recording (or ``{group: labels}`` where
            several files come from one original recording, see :func:`source_group`).
        valid, test: target fractions.

    Returns:
        ``{md5: "train" | "valid" | "test"}``. Deterministic: the same input gives the same answer.
    """
    split = {md5: split_of(md5, valid, test) for md5 in sorted(labels_by_md5)}
    by_class: dict[str, list[str]] = defaultdict(list)
    for md5, labels in labels_by_md5.items():
        for label in set(labels):
            by_class[label].append(md5)
    # Smallest classes first: their few recordings matter most.
    for label in sorted(by_class, key=lambda c: (len(by_class[c]), c)):
        md5s = sorted(by_class[label], key=hash_unit)
        n = len(md5s)
        if n < 3:
            for md5 in md5s:  # too few to hold one out: keep them for training
                split[md5] = "train"
            continue
        held = ("test",) if n < 5 else ("test", "valid")
        for name in SPLITS[1:]:
            members = [m for m in md5s if split[m] == name]
            limit = 0 if name not in held else (1 if n < 10 else len(members))
            for md5 in members[limit:]:  # small classes: hold out one recording per split at most
                split[md5] = "train"
        for name in held:
            if not any(split[m] == name for m in md5s):
                split[next(m for m in md5s if split[m] == "train")] = name
    return split
