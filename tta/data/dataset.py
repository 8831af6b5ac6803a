"""``CorpusDataset``: training examples made on the fly from a built corpus (see :mod:`tta.data.corpus`).

Item ``i`` of epoch ``e`` is drawn with ``numpy.random.default_rng((seed, e, i))`` only, so it is the same in
every run, in every DataLoader worker and after a resume. For the training split, items are class-balanced:
a class is drawn first (speech and music together capped at ``speech_music_frac`` of the draws, the sound
event classes sharing the rest equally), then a clip of it. A clip is cropped or repeated to
``clip_seconds``, optionally augmented (pitch ±2 semitones, EQ, reverb), and with probability ``mix_prob``
combined with a clip of another class: mixed at an SNR of -5..15 dB ("a dog barks while rain falls",
"footsteps with faint wind in the background") or, for ``sequence_prob`` of them, one after the other
("a door closes, then footsteps approach"). Class pairs in ``held_out_pairs`` are never mixed (they are kept for composition tests).
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from tta.audio.io import normalize_waveform, resample
from tta.data.augment import crop_augmented, crop_or_repeat, mix_at_snr, rms
from tta.data.captions import (
    BACKGROUND_CLASSES,
    SPEECH_MUSIC_CLASSES,
    Detail,
    captions_for,
    clip_detail,
    mixture_caption,
)
from tta.data.splits import HELD_OUT_PAIRS, SPLITS, is_held_out
from tta.data.summary import read_manifest
from tta.errors import InputError, TTAError


class CorpusDataset(Dataset):
    """Captioned 16 kHz clips (single sources and two-source mixtures) from ``<root>/manifest.jsonl``.

    Args:
        root: corpus root (holds ``manifest.jsonl`` and ``audio/``).
        split: ``"train"``, ``"valid"`` or ``"test"``, or several joined by ``+`` (``"train+valid"``, for a
            final fit once the settings are chosen).
        clip_seconds: length of every example.
        sample_rate: output rate (the corpus is stored at 16 kHz).
        mix_prob: probability that an example mixes two classes.
        augment: apply random pitch/EQ/reverb and random crops (off: crops start at 0, no effects).
        seed: base seed; item ``i`` of epoch ``e`` depends on ``(seed, e, i)`` only.
        held_out_pairs: class pairs never mixed (default :data:`tta.data.splits.HELD_OUT_PAIRS`).
        examples_per_epoch: ``len(self)`` for class-balanced sampling (default ``max(#clips, 50 * #classes)``).
        balanced: draw classes uniformly (default for ``"train"``); otherwise item ``i`` is clip ``i``.
        speech_music_frac: share of balanced draws given to speech/music classes together.
        sequence_prob: share of two-class examples that play one sound after the other ("X, then Y")
            instead of on top of each other.
        balance_power: within the events (and within speech/music), a class is drawn in proportion to
            ``#clips ** balance_power``: 0 = every class equally often (default), 1 = every clip equally often.
        short_clips: ``"repeat"`` (tile/pad clips shorter than ``clip_seconds``) or ``"skip"`` (drop them,
            counted in :attr:`skipped`).
        mix_snr_db: (low, high) range of the level of the first source over the second in overlapping
            mixtures, drawn uniformly in dB.
        cache: keep decoded clips in memory.

    Each item is ``{"audio": FloatTensor [clip_seconds * sample_rate] (mean removed, peak 0.5),
    "caption": str, "labels": list[str], "id": str}`` (``id`` joins both clip ids with ``+`` for a mixture).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        clip_seconds: float = 5.0,
        sample_rate: int = 16000,
        mix_prob: float = 0.3,
        augment: bool = True,
        seed: int = 0,
        held_out_pairs: list[tuple[str, str]] | tuple[tuple[str, str], ...] | None = None,
        examples_per_epoch: int | None = None,
        balanced: bool | None = None,
        speech_music_frac: float = 0.15,
        sequence_prob: float = 0.25,
        balance_power: float = 0.0,
        short_clips: str = "repeat",
        mix_snr_db: tuple[float, float] = (-5.0, 15.0),
        cache: bool = True,
    ):
        if clip_seconds <= 0:
            raise InputError("clip_seconds must be > 0")
        if not 0.0 <= mix_prob <= 1.0:
            raise InputError("mix_prob must be in [0, 1]")
        if len(mix_snr_db) != 2 or not mix_snr_db[0] <= mix_snr_db[1]:
            raise InputError(f"mix_snr_db must be (low, high) with low <= high, got {mix_snr_db!r}")
        if short_clips not in ("repeat", "skip"):
            raise InputError("short_clips must be 'repeat' or 'skip'")
        parts = str(split).split("+")
        if not all(part in SPLITS for part in parts) or len(set(parts)) != len(parts):
            raise InputError(f"split must be one of {', '.join(SPLITS)} or several joined by '+', got {split!r}")
        if not (0.0 <= speech_music_frac <= 1.0 and 0.0 <= sequence_prob <= 1.0):
            raise InputError("speech_music_frac and sequence_prob must be in [0, 1]")
        self.root = Path(root)
        if not (self.root / "manifest.jsonl").is_file():
            raise InputError(f"no corpus manifest at {self.root / 'manifest.jsonl'} (run `tta data build`)")
        self.split = split
        self.sample_rate = sample_rate
        self.length = int(round(clip_seconds * sample_rate))
        self.mix_prob = mix_prob
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.held_out_pairs = tuple(HELD_OUT_PAIRS if held_out_pairs is None else held_out_pairs)
        self.speech_music_frac = speech_music_frac
        self.balance_power = balance_power
        self.sequence_prob = sequence_prob
        self.mix_snr_db = (float(mix_snr_db[0]), float(mix_snr_db[1]))
        self.cache = cache
        self.skipped: Counter[str] = Counter()
        self._audio: dict[str, np.ndarray] = {}
        self._broken: set[int] = set()

        records = [r for r in read_manifest(self.root) if r["split"] in parts]
        if short_clips == "skip":
            kept = [r for r in records if r["duration"] >= clip_seconds]
            if len(kept) < len(records):
                self.skipped["shorter than the crop"] += len(records) - len(kept)
                warnings.warn(
                    f"{len(records) - len(kept)} clip(s) shorter than {clip_seconds} s skipped", stacklevel=2
                )
            records = kept
        if not records:
            raise InputError(f"corpus {self.root} has no usable clip in split {split!r}")
        self.records = records
        self.by_label: dict[str, list[int]] = defaultdict(list)
        for k, rec in enumerate(records):
            for label in rec["labels"]:
                self.by_label[label].append(k)
        self.labels = sorted(self.by_label)
        self.balanced = ("train" in parts) if balanced is None else balanced
        self._class_weights = self._weights()
        n_default = max(len(records), 50 * len(self.labels))
        self.examples_per_epoch = (examples_per_epoch or n_default) if self.balanced else len(records)

    # ----------------------------------------------------------------------------------------- sampling

    def _weights(self) -> np.ndarray:
        """Class draw probabilities [C]: events share ``1 - speech_music_frac``, speech/music the rest; inside
        each group a class weighs ``#clips ** balance_power``."""
        special = np.array([label in SPEECH_MUSIC_CLASSES for label in self.labels])
        sizes = np.array([len(self.by_label[label]) for label in self.labels], dtype=np.float64) ** self.balance_power
        w = np.zeros(len(self.labels))
        groups = [(special, self.speech_music_frac), (~special, 1.0 - self.speech_music_frac)]
        if special.all() or not special.any():
            groups = [(np.ones(len(self.labels), dtype=bool), 1.0)]
        for mask, share in groups:
            w[mask] = share * sizes[mask] / sizes[mask].sum()
        return w / w.sum()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (changes which examples items map to; call once per epoch, like a sampler)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.examples_per_epoch

    def _draw_clip(self, rng: np.random.Generator, label: str | None = None) -> int:
        if label is None:
            label = self.labels[int(rng.choice(len(self.labels), p=self._class_weights))]
        members = self.by_label[label]
        return members[int(rng.integers(len(members)))]

    def _partner_label(self, label: str, rng: np.random.Generator) -> str | None:
        """A second class to mix with ``label`` (backgrounds preferred), or None if every pair is held out."""
        options = [b for b in self.labels if b != label and not is_held_out(label, b, self.held_out_pairs)]
        if not options:
            return None
        backgrounds = [b for b in options if b in BACKGROUND_CLASSES]
        pool = backgrounds if backgrounds and rng.random() < 0.5 else options
        return pool[int(rng.integers(len(pool)))]

    # ------------------------------------------------------------------------------------------- audio

    def _load(self, k: int) -> np.ndarray:
        rec = self.records[k]
        if rec["id"] in self._audio:
            return self._audio[rec["id"]]
        wav, sr = sf.read(str(self.root / rec["path"]), dtype="float32", always_2d=True)  # [N, C]
        if wav.size == 0:
            raise ValueError("no samples")
        wav = resample(np.ascontiguousarray(wav.mean(axis=1)), int(sr), self.sample_rate)
        if self.cache:
            self._audio[rec["id"]] = wav
        return wav

    def _load_checked(self, k: int, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        """Clip ``k``'s audio; an unreadable or empty file is reported once and replaced by another clip."""
        for _ in range(len(self.records)):
            if k not in self._broken:
                try:
                    return k, self._load(k)
                except Exception as err:  # soundfile raises several types for corrupt/missing files
                    rec = self.records[k]
                    self._broken.add(k)
                    self.skipped["unreadable audio"] += 1
                    warnings.warn(f"skipping unreadable clip {rec['id']} ({rec['path']}): {err}", stacklevel=3)
            same = [m for m in self.by_label[self.records[k]["labels"][0]] if m not in self._broken]
            pool = same or [m for m in range(len(self.records)) if m not in self._broken]
            if not pool:
                break
            k = pool[int(rng.integers(len(pool)))]
        raise TTAError(f"corpus {self.root}: no readable clip left; rebuild it with `tta data build`")

    def _source(self, k: int, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        """Clip ``k`` (or its replacement if unreadable) as one example: [clip_seconds * sample_rate]."""
        return self._excerpt(k, rng, self.length)

    def _excerpt(self, k: int, rng: np.random.Generator, length: int) -> tuple[int, np.ndarray]:
        """Clip ``k`` (or its replacement if unreadable) cropped/repeated to ``length`` samples and augmented."""
        k, wav = self._load_checked(k, rng)
        return k, crop_augmented(wav, length, rng, self.sample_rate, augment=self.augment)

    def _detail(self, k: int) -> Detail | None:
        rec = self.records[k]
        return clip_detail(rec["labels"][0], rec["source_path"], rec.get("description"))

    # ------------------------------------------------------------------------------------------- items

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        rng = np.random.default_rng((self.seed, self.epoch, i))
        k = self._draw_clip(rng) if self.balanced else i
        partner = self._partner_label(self.records[k]["labels"][0], rng) if rng.random() < self.mix_prob else None
        if partner is None:
            k, wav = self._source(k, rng)
            label = self.records[k]["labels"][0]
            caption = captions_for(label, rng, self._detail(k))
            return self._item(wav, caption, list(self.records[k]["labels"]), self.records[k]["id"])
        k2 = self._draw_clip(rng, partner)
        sequential = rng.random() < self.sequence_prob
        if sequential:  # one after the other, at about the same level
            n_a = int(self.length * rng.uniform(0.35, 0.65))
            k, wav_a = self._excerpt(k, rng, n_a)
            k2, wav_b = self._excerpt(k2, rng, self.length - n_a)
            gain = rms(wav_a) / rms(wav_b) * 10.0 ** (rng.uniform(-5.0, 5.0) / 20.0)
            wav, snr = np.concatenate([wav_a, gain * wav_b]).astype(np.float32), None
        else:
            k, wav_a = self._source(k, rng)
            k2, wav_b = self._source(k2, rng)
            snr = float(rng.uniform(*self.mix_snr_db))
            wav = mix_at_snr(wav_a, wav_b, snr)
        label, label_b = self.records[k]["labels"][0], self.records[k2]["labels"][0]
        if label == label_b or is_held_out(label, label_b, self.held_out_pairs):
            # only when unreadable clips were replaced by clips of another class: fall back to one source
            return self._item(wav_a, captions_for(label, rng), [label], self.records[k]["id"])
        caption = mixture_caption(label, label_b, rng, self._detail(k), self._detail(k2), snr, sequential)
        return self._item(wav, caption, [label, label_b], f"{self.records[k]['id']}+{self.records[k2]['id']}")

    def _item(self, wav: np.ndarray, caption: str, labels: list[str], clip_id: str) -> dict:
        """The output dict; ``wav`` [N] padded/cut to length, mean removed and peak set to 0.5."""
        wav = crop_or_repeat(wav, self.length, np.random.default_rng(0), random_offset=False)
        audio = normalize_waveform(wav) if np.abs(wav).max() > 0 else wav
        audio = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        return {"audio": audio, "caption": caption, "labels": labels, "id": clip_id}
