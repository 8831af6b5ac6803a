"""Known answers on real data (slow; skipped without the built corpus or the shipped CLAP): with the shipped
CLAP, a test clip scores higher with its own caption than with a caption of another class, and the test split
is closer (FAD) to the train split than white noise is."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tta.paths import cache_dir, default_clap_dir

pytestmark = pytest.mark.slow

CORPUS = cache_dir() / "corpus"


@pytest.fixture(scope="module")
def backend():
    if not (CORPUS / "manifest.jsonl").is_file() or not (default_clap_dir() / "config.json").is_file():
        pytest.skip("needs the built corpus (tta data build) and the shipped CLAP (checkpoints/clap)")
    from tta.evaluation.backends import load_backend

    return load_backend("clap")


def _rows(split: str, n: int) -> list[dict]:
    rows = [json.loads(x) for x in (CORPUS / "manifest.jsonl").read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r["split"] == split and len(r["labels"]) == 1]
    return [rows[i] for i in sorted(np.random.default_rng(0).permutation(len(rows))[:n])]


def _embed(backend, rows):
    from tta.audio.io import load_audio

    return np.concatenate([backend.features(load_audio(CORPUS / r["path"])[: 10 * 16000]).frames for r in rows])


def test_own_caption_beats_mismatched_caption(backend):
    from tta.evaluation import clap_cosines

    rows = _rows("test", 40)
    audio = _embed(backend, rows)
    own = clap_cosines(backend.encode_text([r["captions"][0] for r in rows]), audio)
    other = [next(s for s in rows[i + 1 :] + rows if s["labels"] != r["labels"]) for i, r in enumerate(rows)]
    mismatched = clap_cosines(backend.encode_text([s["captions"][0] for s in other]), audio)
    assert own.mean() > mismatched.mean() + 0.1
    assert (own > mismatched).mean() > 0.75


def test_real_audio_is_closer_to_real_than_noise(backend):
    from tta.evaluation import frechet_distance

    test, train = _embed(backend, _rows("test", 40)), _embed(backend, _rows("train", 80))
    rng = np.random.default_rng(0)
    noise = [rng.uniform(-0.5, 0.5, 16000).astype(np.float32) for _ in range(len(test))]
    noise = np.concatenate([backend.features(w).frames for w in noise])
    assert frechet_distance(test, train) < 0.5 * frechet_distance(noise, train)
