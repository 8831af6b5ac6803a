"""AudioLDM 2: parity with diffusers' AudioLDM2Pipeline on a tiny random folder it saved, loading errors, and the
pipeline's features (samplers, durations, negative prompts, re-ranking, CLI and sidecars) on that folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tta.errors import ModelLoadError
from tta.pipelines import TTAPipeline

DURATION = 0.64  # 64 mel frames: no padding difference between diffusers and tta
STEPS = 3
TOL = 1e-4
PROMPT = "a dog barks in the rain"
SAME_T5_LENGTH = "a cat meows twice low quality"  # as many T5 tokens as PROMPT: diffusers pads neither


@pytest.fixture(scope="module")
def pipes(audioldm2_dir):
    from diffusers import AudioLDM2Pipeline

    ref = AudioLDM2Pipeline.from_pretrained(str(audioldm2_dir), local_files_only=True)
    ref.set_progress_bar_config(disable=True)
    return ref, TTAPipeline.from_pretrained(audioldm2_dir)


@pytest.fixture(scope="module")
def latents(pipes):
    shape = pipes[1].layout(DURATION).latent_shape
    return torch.randn((1, *shape), generator=torch.Generator().manual_seed(123))


def _both(pipes, latents, guidance, negative=None):
    ref, ours = pipes
    kw = dict(audio_length_in_s=DURATION, num_inference_steps=STEPS, guidance_scale=guidance, negative_prompt=negative)
    expected = ref(PROMPT, latents=latents.clone(), **kw).audios
    got = ours(PROMPT, sampler="ddim", latents=latents.clone(), progress=False, peak_limit=None, **kw).audios
    return expected, got


@pytest.mark.parametrize("guidance, negative", [(1.0, None), (3.0, SAME_T5_LENGTH)])
def test_waveform_matches_diffusers(pipes, latents, guidance, negative):
    expected, got = _both(pipes, latents, guidance, negative)
    assert got.shape == expected.shape
    assert np.abs(expected).max() > 1e-3  # the random vocoder is audible
    assert np.abs(got - expected).max() <= TOL


def test_condition_rows_hold_diffusers_embeddings(pipes):
    ref, ours = pipes
    with torch.no_grad():
        t5, mask, tokens = ref.encode_prompt(PROMPT, "cpu", 1, False)
    parts = ours.unet.packer.unpack(ours.clap.encode_text([PROMPT]))
    length = int(mask.sum())
    torch.testing.assert_close(parts["tokens"], tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(parts["t5"][:, :length], t5, atol=1e-5, rtol=1e-5)
    assert parts["mask"][0, :length].eq(1).all() and parts["mask"][0, length:].eq(0).all()


def test_negative_prompt_and_condition_matter(pipes, latents):
    _, ours = pipes
    run = dict(audio_length_in_s=DURATION, num_inference_steps=STEPS, sampler="ddim", progress=False)
    a = ours(PROMPT, latents=latents.clone(), **run).audios
    b = ours(PROMPT, latents=latents.clone(), negative_prompt="loud noise", **run).audios
    c = ours("a piano plays a slow melody", latents=latents.clone(), **run).audios
    assert np.abs(a - b).max() > 1e-4 and np.abs(a - c).max() > 1e-4


def test_a_prompt_conditions_the_same_in_any_batch(pipes):
    _, ours = pipes
    alone = ours.clap.encode_text(["thunder"])
    batch = ours.clap.encode_text(["people talk in a busy cafe while cups clink", "thunder"])
    torch.testing.assert_close(batch[1:], alone)


@pytest.mark.parametrize("sampler", ["dpmpp-2m", "ddim", "euler", "unipc"])
def test_every_sampler_and_an_odd_duration(pipes, sampler):
    out = pipes[1](PROMPT, audio_length_in_s=0.37, num_inference_steps=2, sampler=sampler, seed=3, progress=False)
    assert out.audios.shape == (1, round(0.37 * 16000)) and np.isfinite(out.audios).all()


def test_reranking_with_the_folders_clap(pipes):
    out = pipes[1](PROMPT, audio_length_in_s=0.3, num_inference_steps=2, num_candidates=2, seed=1, progress=False)
    assert out.clap_scores is not None and out.audios.shape[0] == 1


def test_cli_generate_and_regenerate_from_sidecar(audioldm2_dir, tmp_path):
    from tta.cli import main

    base = ["generate", PROMPT, "--model", str(audioldm2_dir), "--steps", "2", "--duration", "0.3", "--no-progress"]
    assert main([*base, "--seed", "5", "--negative", "noise", "-o", str(tmp_path / "a.wav")]) == 0
    meta = json.loads((tmp_path / "a.json").read_text())
    assert meta["negative_prompt"] == "noise" and meta["model_hash"]
    assert main(["generate", "--from-sidecar", str(tmp_path / "a.json"), "-o", str(tmp_path / "b.wav")]) == 0
    assert (tmp_path / "b.wav").read_bytes() == (tmp_path / "a.wav").read_bytes()


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_missing_tokenizer_is_one_line_naming_it(audioldm2_dir, tmp_path):
    folder = _copy(audioldm2_dir, tmp_path / "m")
    shutil.rmtree(folder / "tokenizer_2")
    with pytest.raises(ModelLoadError, match="tokenizer_2"):
        TTAPipeline.from_pretrained(folder)


def test_missing_weights_are_named(audioldm2_dir, tmp_path):
    folder = _copy(audioldm2_dir, tmp_path / "w")
    (folder / "language_model" / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="language_model/model.safetensors"):
        TTAPipeline.from_pretrained(folder)


def test_mismatched_component_names_its_config(audioldm2_dir, tmp_path):
    from transformers import T5Config, T5EncoderModel

    folder = _copy(audioldm2_dir, tmp_path / "x")
    shutil.rmtree(folder / "text_encoder_2")
    vocab = T5EncoderModel.config_class.from_pretrained(str(audioldm2_dir / "text_encoder_2")).vocab_size
    other = T5EncoderModel(T5Config(vocab_size=vocab, d_model=32, d_ff=37, d_kv=8, num_heads=2, num_layers=1))
    other.save_pretrained(str(folder / "text_encoder_2"))  # a valid T5 that the projection model cannot take
    with pytest.raises(ModelLoadError, match="projection_model/config.json.*text_encoder_2") as err:
        TTAPipeline.from_pretrained(folder)
    assert "\n" not in str(err.value)


def test_corrupt_component_config_is_one_line(audioldm2_dir, tmp_path):
    folder = _copy(audioldm2_dir, tmp_path / "c")
    path = folder / "projection_model" / "config.json"
    cfg = json.loads(path.read_text())
    cfg["text_encoder_1_dim"] += 8  # no longer the shape of its own weights
    path.write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="projection_model") as err:
        TTAPipeline.from_pretrained(folder)
    assert "\n" not in str(err.value)
