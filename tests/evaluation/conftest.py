"""Small audio folders for the evaluation tests (written under a fixed seed) and a deterministic tiny CLAP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tta.audio.io import save_audio

PROMPTS = ["a high beep", "a low hum", "white noise", "a chirp", "a click train", "a mid tone"]


def clip(i: int, seed: int, seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    """Clip ``i``: a distinct sound per index, with seeded noise."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    tone = np.sin(2 * np.pi * (150 + 170 * i) * t * (1 + 0.3 * (i % 2) * t))
    return (0.3 * tone + 0.03 * (1 + i) * rng.normal(size=t.size)).astype(np.float32)


def write_folder(folder, seed: int, n: int = 6, sidecars: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        save_audio(folder / f"clip_{i}.wav", clip(i, seed))
        if sidecars:
            (folder / f"clip_{i}.json").write_text(json.dumps({"prompt": PROMPTS[i], "seed": i}))
    return folder


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """(generated, reference) folders of 6 paired clips; generated ones carry tta-generate-style sidecars."""
    monkeypatch.setenv("TTA_CACHE", str(tmp_path / "cache"))
    return write_folder(tmp_path / "gen", seed=1, sidecars=True), write_folder(tmp_path / "ref", seed=2)


@pytest.fixture(scope="session")
def tiny_clap_backend():
    """tta's CLAP architecture (MiniLM tokenizer + tiny random towers): deterministic, offline."""
    from tta.evaluation.backends.clap import ClapBackend
    from tta.models.clap.minilm_mel import MiniLMMelClap

    torch.manual_seed(0)
    text = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    model = MiniLMMelClap(text_config=text, embedding_dim=48, text_hidden=32, stem_channels=4, audio_width=32)
    return ClapBackend(model=model.eval())
