"""A tiny corpus on disk for the stages that train on audio (VAE, vocoder, LDM): no network, seconds to build."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

SR = 16000


def sound(kind: str, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    if kind == "tone":
        wav = np.sin(2 * np.pi * rng.uniform(200, 900) * t)
    else:
        wav = rng.standard_normal(t.size) * np.exp(-3 * (t % 0.5))
    return (0.4 * wav / np.abs(wav).max()).astype(np.float32)


def make_corpus(root):
    """A corpus root with 2 classes, 8 FLAC clips (train 6, valid 2) and a manifest."""
    (root / "audio").mkdir()
    rows = []
    for i in range(8):
        kind = "tone" if i % 2 else "clicks"
        label = "birds chirping" if kind == "tone" else "typing"  # corpus classes (captions need them)
        name = f"audio/{kind}{i}.flac"
        sf.write(root / name, sound(kind, 1.2 + 0.2 * i, i), SR)
        rows.append(
            {
                "id": f"{kind}{i}",
                "path": name,
                "labels": [label],
                "captions": [f"a {kind} sound"],
                "split": "valid" if i >= 6 else "train",
                "duration": 1.2 + 0.2 * i,
                "md5": f"{i:032x}",
                "package": "fixture",
                "source_path": f"sounds/{kind}{i}.wav",
                "license": "CC0-1.0",
            }
        )
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root
