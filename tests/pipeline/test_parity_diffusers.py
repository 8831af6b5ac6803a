"""Parity with diffusers' AudioLDMPipeline on a tiny random model saved by diffusers itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tta.pipelines import TTAPipeline

DURATION = 0.64  # 64 mel frames: no padding difference between diffusers and tta
STEPS = 3
TOL = 1e-4


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def pipes(audioldm_dir):
    from diffusers import AudioLDMPipeline

    ref = AudioLDMPipeline.from_pretrained(str(audioldm_dir), local_files_only=True)
    ref.set_progress_bar_config(disable=True)
    ours = TTAPipeline.from_pretrained(audioldm_dir)
    return ref, ours


@pytest.fixture(scope="module")
def latents(pipes):
    _, ours = pipes
    shape = ours.layout(DURATION).latent_shape
    return torch.randn((1, *shape), generator=torch.Generator().manual_seed(123))


def _ref(ref, latents, prompt="a dog barks in the rain", guidance=2.5, negative=None):
    out = ref(
        prompt,
        audio_length_in_s=DURATION,
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        negative_prompt=negative,
        latents=latents.clone(),
    )
    return out.audios


def _ours(ours, latents, prompt="a dog barks in the rain", guidance=2.5, negative=None):
    out = ours(
        prompt,
        audio_length_in_s=DURATION,
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        negative_prompt=negative,
        sampler="ddim",
        latents=latents.clone(),
        progress=False,
    )
    return out.audios


def test_text_embeddings_match_diffusers(pipes):
    ref, ours = pipes
    prompts = ["a dog barks in the rain", "thunder", ""]
    tokens = ref.tokenizer(
        prompts, padding="max_length", max_length=ref.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        expected = ref.text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask).text_embeds
    expected = torch.nn.functional.normalize(expected, dim=-1)
    got = ours.clap.encode_text(prompts)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_waveform_matches_diffusers(pipes, latents):
    ref, ours = pipes
    expected = _ref(ref, latents)
    got = _ours(ours, latents)
    assert got.shape == expected.shape == (1, int(DURATION * 16000))
    err = rel_l2(got, expected)
    print(f"relative L2 error vs diffusers: {err:.2e}")
    assert err <= TOL


def test_negative_prompt_matches_diffusers(pipes, latents):
    ref, ours = pipes
    expected = _ref(ref, latents, negative="people talk", guidance=3.0)
    got = _ours(ours, latents, negative="people talk", guidance=3.0)
    assert rel_l2(got, expected) <= TOL


def test_outputs_are_sensitive_to_prompt_and_guidance(pipes, latents):
    """The parity above means something only if the model hears its condition far above the tolerance."""
    _, ours = pipes
    base = _ours(ours, latents)
    other_prompt = _ours(ours, latents, prompt="a piano plays a slow melody")
    other_scale = _ours(ours, latents, guidance=5.0)
    print(f"moved by another prompt {rel_l2(other_prompt, base):.2e}, by guidance 5 {rel_l2(other_scale, base):.2e}")
    assert rel_l2(other_prompt, base) > 100 * TOL
    assert rel_l2(other_scale, base) > 100 * TOL
