"""Tango: parity with Tango's published inference maths (tests/families/tango_reference.py) over the same
diffusers / transformers modules, and the layout tta reads (Tango's own hub layout: test_tango_hub.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tests.families.tango_reference import tango_reference
from tta.errors import ModelLoadError
from tta.pipelines import TTAPipeline

DURATION = 0.64
STEPS = 3
TOL = 1e-4
PROMPTS = ["a dog barks in the rain", "thunder"]  # different T5 lengths: the reference pads the batch


@pytest.fixture(scope="module")
def ours(tango_dir):
    return TTAPipeline.from_pretrained(tango_dir)


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_waveforms_match_tangos_inference(ours, guidance):
    from diffusers import DDIMScheduler

    latents = torch.randn((2, *ours.layout(DURATION).latent_shape), generator=torch.Generator().manual_seed(5))
    unet, t5 = ours.unet.unet, ours.clap.t5
    scheduler = DDIMScheduler.from_config(ours.scheduler_config)
    expected = tango_reference(
        t5, ours.clap.tokenizer, unet, ours.vae, ours.vocoder, scheduler, PROMPTS, latents.clone(), STEPS, guidance
    ).numpy()
    got = ours(
        PROMPTS, audio_length_in_s=DURATION, num_inference_steps=STEPS, guidance_scale=guidance, sampler="ddim",
        latents=latents.clone(), progress=False, peak_limit=None,
    ).audios  # fmt: skip
    expected = expected[:, : got.shape[1]]  # Tango keeps the vocoder's whole output; tta cuts it to the duration
    assert got.shape == (2, round(DURATION * 16000)) and np.abs(expected).max() > 1e-3
    assert np.abs(got - expected).max() <= TOL


def test_v_prediction_schedule_every_sampler_and_negative_prompt(ours):
    assert ours.scheduler_config["prediction_type"] == "v_prediction"
    run = dict(audio_length_in_s=0.45, num_inference_steps=2, seed=2, progress=False)
    outs = [ours(PROMPTS[0], sampler=s, **run).audios for s in ("dpmpp-2m", "ddim", "euler", "unipc")]
    assert all(o.shape == (1, round(0.45 * 16000)) and np.isfinite(o).all() for o in outs)
    neg = ours(PROMPTS[0], sampler="ddim", negative_prompt="loud noise", **run).audios
    assert np.abs(neg - outs[1]).max() > 1e-4


def test_cli_generate_and_regenerate_from_sidecar(tango_dir, clap_dir, tmp_path):
    from tta.cli import main

    base = ["generate", "thunder", "--model", str(tango_dir), "--steps", "2", "--duration", "0.3", "--no-progress"]
    assert main([*base, "--seed", "5", "-o", str(tmp_path / "a.wav")]) == 0
    assert main(["generate", "--from-sidecar", str(tmp_path / "a.json"), "-o", str(tmp_path / "b.wav")]) == 0
    assert (tmp_path / "b.wav").read_bytes() == (tmp_path / "a.wav").read_bytes()
    assert main([*base, "--candidates", "2", "-o", str(tmp_path / "c.wav")]) == 2  # no CLAP of its own
    assert main([*base, "--candidates", "2", "--clap", str(clap_dir), "-o", str(tmp_path / "d.wav")]) == 0
    assert "clap_score" in json.loads((tmp_path / "d.json").read_text())


def test_missing_tokenizer_is_a_one_line_error(tango_dir, tmp_path):
    folder = shutil.copytree(tango_dir, tmp_path / "t")
    shutil.rmtree(folder / "tokenizer")
    with pytest.raises(ModelLoadError, match="tokenizer"):
        TTAPipeline.from_pretrained(folder)
