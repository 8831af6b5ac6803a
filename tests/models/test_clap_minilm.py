"""tta's own CLAP backend (MiniLM text + mel encoder) against the ClapEncoder interface the pipeline uses."""

from __future__ import annotations

import json

import pytest
import torch

from tta.errors import ModelLoadError
from tta.models.clap import ClapEncoder, load_clap
from tta.models.clap.minilm_mel import MiniLMMelClap
from tta.paths import default_clap_dir

# a randomly initialised 2-layer BERT stands in for MiniLM (the tokenizer still comes from the pip package)
TINY_TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
TINY = dict(text_config=TINY_TEXT, embedding_dim=64, text_hidden=32, stem_channels=4, audio_width=32, audio_blocks=2)


@pytest.fixture(scope="module")
def tiny_clap():
    torch.manual_seed(0)
    return MiniLMMelClap(**TINY).eval()


def test_satisfies_the_pipeline_interface(tiny_clap):
    clap = tiny_clap
    assert isinstance(clap, ClapEncoder)
    assert clap.sample_rate == 16000 and clap.has_audio and clap.embedding_dim == 64
    text = clap.encode_text(["a dog barking", "rain on a roof", "a dog barking"])
    audio = clap.encode_audio(torch.randn(2, 16000) * 0.1)
    assert text.shape == (3, 64) and audio.shape == (2, 64)
    assert text.dtype == torch.float32 and audio.dtype == torch.float32
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(audio.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(text[0], text[2])
    assert clap.similarity(["x"], torch.randn(4, 8000)).shape == (1, 4)


def test_audio_edge_cases(tiny_clap):
    wav = torch.randn(1, 24000) * 0.1
    emb = tiny_clap.encode_audio(wav)
    torch.testing.assert_close(tiny_clap.encode_audio(wav * 4.0), emb, atol=1e-5, rtol=1e-4)  # gain-invariant
    assert tiny_clap.encode_audio(wav[0]).shape == (1, 64)  # [N] accepted
    assert torch.isfinite(tiny_clap.encode_audio(torch.zeros(1, 100))).all()  # short and silent


def test_text_tower_is_frozen_and_cached(tiny_clap):
    assert not any(p.requires_grad for p in tiny_clap.text_backbone.parameters())
    tiny_clap.encode_text(["a cached caption"])
    assert "a cached caption" in tiny_clap._text_cache
    tiny_clap.train()
    assert not tiny_clap.text_backbone.training and tiny_clap.audio_encoder.training
    tiny_clap.eval()


def test_save_load_roundtrip_via_load_clap(tiny_clap, tmp_path):
    tiny_clap.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["backend"] == "minilm-mel" and config["embedding_dim"] == 64
    loaded = load_clap(tmp_path)
    assert isinstance(loaded, MiniLMMelClap) and not loaded.training
    wav = torch.randn(2, 16000) * 0.1
    torch.testing.assert_close(loaded.encode_audio(wav), tiny_clap.encode_audio(wav))
    torch.testing.assert_close(loaded.encode_text(["rain"]), tiny_clap.encode_text(["rain"]))


def test_pretrained_minilm_weights_are_not_saved(tmp_path):
    torch.manual_seed(0)
    clap = MiniLMMelClap(stem_channels=4, audio_width=32, audio_blocks=1)  # the real MiniLM, tiny audio tower
    assert clap.text_backbone.config.hidden_size == 384
    clap.save_pretrained(tmp_path)
    from safetensors.torch import load_file

    keys = load_file(str(tmp_path / "model.safetensors")).keys()
    assert keys and not any(k.startswith("text_backbone.") for k in keys)
    assert (tmp_path / "model.safetensors").stat().st_size < 5_000_000
    loaded = MiniLMMelClap.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.encode_text(["a cat meowing"]), clap.eval().encode_text(["a cat meowing"]))


def test_corrupt_or_mismatched_folders_raise_model_load_error(tiny_clap, tmp_path):
    tiny_clap.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        load_clap(tmp_path)
    weights.write_bytes(data)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "audio_blocks": 3}))
    with pytest.raises(ModelLoadError, match="does not match"):
        load_clap(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "no_such_arg": 1}))
    with pytest.raises(ModelLoadError, match="no_such_arg"):
        load_clap(tmp_path)


@pytest.mark.skipif(not (default_clap_dir() / "config.json").is_file(), reason="no shipped CLAP")
def test_shipped_default_clap_loads():
    clap = load_clap()
    assert isinstance(clap, MiniLMMelClap) and clap.embedding_dim == 512
    emb = clap.encode_text(["the sound of rain"])
    assert emb.shape == (1, 512)
    assert clap.encode_audio(torch.randn(1, 16000) * 0.1).shape == (1, 512)


def test_embeddings_do_not_depend_on_the_batch(tiny_clap):
    """The pipeline encodes each prompt alone and re-ranks candidates in batches: both must agree."""
    texts = ["a dog barks", "thunder rolls in the distance"]
    wavs = torch.randn(3, 16000) * 0.1
    with torch.no_grad():
        together_t, together_a = tiny_clap.encode_text(texts), tiny_clap.encode_audio(wavs)
        for i, t in enumerate(texts):
            torch.testing.assert_close(tiny_clap.encode_text([t])[0], together_t[i], atol=1e-5, rtol=1e-5)
        for i in range(3):
            torch.testing.assert_close(tiny_clap.encode_audio(wavs[i : i + 1])[0], together_a[i], atol=1e-5, rtol=1e-5)
    assert tiny_clap.device == torch.device("cpu")
