"""MusicLDM: parity with diffusers' MusicLDMPipeline on a tiny random folder it saved, re-ranking with the folder's
own CLAP, the CLI, and loading errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tta.errors import ModelLoadError
from tta.pipelines import TTAPipeline

DURATION = 0.64
STEPS = 3
TOL = 1e-4
PROMPT = "a piano plays a slow melody"


@pytest.fixture(scope="module")
def pipes(musicldm_dir):
    from diffusers import MusicLDMPipeline

    ref = MusicLDMPipeline.from_pretrained(str(musicldm_dir), local_files_only=True)
    ref.set_progress_bar_config(disable=True)
    # diffusers' deprecated MusicLDM expects transformers 4's get_text_features (a tensor); transformers 5 returns
    # an output object whose pooler_output is that tensor. Unwrap it so the reference runs its own maths.
    features = ref.text_encoder.get_text_features
    ref.text_encoder.get_text_features = lambda *a, **k: getattr(features(*a, **k), "pooler_output", None)
    return ref, TTAPipeline.from_pretrained(musicldm_dir)


@pytest.mark.parametrize("guidance, negative", [(1.0, None), (2.5, None), (3.0, "loud noise")])
def test_waveform_matches_diffusers(pipes, guidance, negative):
    ref, ours = pipes
    latents = torch.randn((1, *ours.layout(DURATION).latent_shape), generator=torch.Generator().manual_seed(7))
    kw = dict(audio_length_in_s=DURATION, num_inference_steps=STEPS, guidance_scale=guidance, negative_prompt=negative)
    expected = ref(PROMPT, latents=latents.clone(), **kw).audios
    got = ours(PROMPT, sampler="ddim", latents=latents.clone(), progress=False, peak_limit=None, **kw).audios
    assert got.shape == expected.shape and np.abs(expected).max() > 1e-3
    assert np.abs(got - expected).max() <= TOL


def test_reranks_with_its_own_clap_and_runs_every_sampler(pipes):
    _, ours = pipes
    assert ours.clap.has_audio
    out = ours(PROMPT, audio_length_in_s=0.3, num_inference_steps=2, num_candidates=2, seed=4, progress=False)
    assert out.clap_scores is not None
    for sampler in ("dpmpp-2m", "euler", "unipc"):
        wav = ours(PROMPT, audio_length_in_s=0.41, num_inference_steps=2, sampler=sampler, seed=1, progress=False)
        assert wav.audios.shape == (1, round(0.41 * 16000)) and np.isfinite(wav.audios).all()


def test_cli_generate_and_regenerate_from_sidecar(musicldm_dir, tmp_path):
    from tta.cli import main

    base = ["generate", PROMPT, "--model", str(musicldm_dir), "--steps", "2", "--duration", "0.3", "--no-progress"]
    assert main([*base, "--seed", "2", "--candidates", "2", "-o", str(tmp_path / "a.wav")]) == 0
    assert "clap_score" in json.loads((tmp_path / "a.json").read_text())
    assert main(["generate", "--from-sidecar", str(tmp_path / "a.json"), "-o", str(tmp_path / "b.wav")]) == 0
    assert (tmp_path / "b.wav").read_bytes() == (tmp_path / "a.wav").read_bytes()


def test_missing_feature_extractor_and_mismatched_unet_are_named(musicldm_dir, tmp_path):
    folder = shutil.copytree(musicldm_dir, tmp_path / "m")
    shutil.rmtree(folder / "feature_extractor")
    with pytest.raises(ModelLoadError, match="feature_extractor/preprocessor_config.json"):
        TTAPipeline.from_pretrained(folder)
    folder = shutil.copytree(musicldm_dir, tmp_path / "u")
    path = folder / "text_encoder" / "config.json"
    cfg = json.loads(path.read_text())
    cfg["projection_dim"] = 16
    cfg["text_config"]["projection_dim"] = 16
    cfg["audio_config"]["projection_dim"] = 16
    path.write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="text_encoder") as err:
        TTAPipeline.from_pretrained(folder)
    assert "\n" not in str(err.value)
