"""The shipped VAE and vocoder (checkpoints/vae, checkpoints/vocoder) load and do their job on a synthetic clip:
they were trained on real recordings, so they must reconstruct a tone-and-noise clip far better than chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tta.audio.mel import MelSpectrogram
from tta.evaluation.reconstruction import log_mel_l1, reconstruct
from tta.loading import load_vae, load_vocoder
from tta.paths import REPO_ROOT

SHIPPED = REPO_ROOT / "checkpoints"


def clip(seconds: float = 2.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(0)
    wav = 0.3 * np.sin(2 * np.pi * 440 * t) * (t < 1.0) + 0.1 * rng.standard_normal(t.size) * (t >= 1.0)
    wav += 0.2 * np.sin(2 * np.pi * (200 + 400 * t) * t) * (t >= 1.0)
    return wav.astype(np.float32)


@pytest.fixture(scope="module")
def mel():
    return MelSpectrogram()


def test_shipped_vae_reconstructs_and_its_scaling_factor_whitens(mel):
    vae = load_vae(SHIPPED)
    wav = clip()
    x = mel(torch.from_numpy(wav))[None, None, :200]
    with torch.no_grad():
        posterior = vae.encode(x).latent_dist
        rec = vae.decode(posterior.mode()).sample
    err = float((rec - x).abs().mean())
    chance = float((x - x.mean()).abs().mean())
    assert err < 0.15 * chance, (err, chance)  # measured 0.27 vs 4.19; an untrained VAE: 5.9
    z = posterior.sample(generator=torch.Generator().manual_seed(0)) * vae.config.scaling_factor
    assert 0.3 < float(z.std()) < 3.0  # scaled latents are of unit order, as the diffusion model expects


def test_shipped_vocoder_is_faster_than_real_time_and_keeps_the_mel(mel):
    vocoder = load_vocoder(SHIPPED)
    wav = clip()
    out = reconstruct(wav, None, vocoder, mel)
    assert out.shape == wav.shape and np.isfinite(out).all()
    noise = np.random.default_rng(1).standard_normal(wav.size).astype(np.float32) * float(wav.std())
    assert log_mel_l1(wav, out, mel) < 0.5 * log_mel_l1(wav, noise, mel)
    whole = reconstruct(wav, load_vae(SHIPPED), vocoder, mel)  # the whole decoder path
    assert log_mel_l1(wav, whole, mel) < 0.5 * log_mel_l1(wav, noise, mel)
