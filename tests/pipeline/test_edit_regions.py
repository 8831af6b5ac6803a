"""Edit regions and masks (no model): ranges, mel/latent masks, feathering, cut-off detection, the blend hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tta.audio.io import resample
from tta.audio.mel import MelSpectrogram
from tta.editing import EditRegion, KeepBlend, detect_cutoff_hz, img2img_timesteps, parse_range
from tta.editing.regions import keep_weights, latent_keep, mel_bin_tops
from tta.errors import InputError
from tta.sampling import make_scheduler
from tta.sampling.schedulers import AUDIOLDM_SCHEDULER

SR = 16000
TOPS = mel_bin_tops(MelSpectrogram().mel_basis, SR, 1024)


def test_parse_range():
    assert parse_range("1.0:2.5") == (1.0, 2.5) and parse_range(" 3 : 4e0 ") == (3.0, 4.0)
    for bad in ("1-2", "abc", "1:", ":2", "1:2:3"):
        with pytest.raises(InputError, match="START:END"):
            parse_range(bad)


def test_region_masks_in_mel_frames_and_bins():
    region = EditRegion(ranges=((0.5, 0.8), (0.1, 0.2))).check(1.0, SR)
    assert region.ranges == ((0.1, 0.2), (0.5, 0.8))
    times, bins = region.mel_masks(104, 100.0, TOPS)
    assert np.flatnonzero(times).tolist() == [*range(10, 20), *range(50, 80)] and bins.all()
    times, bins = EditRegion(above_hz=4000).mel_masks(104, 100.0, TOPS)
    assert times.all() and not bins[0] and bins[-1]
    assert np.all(TOPS[~bins] <= 4000) and np.all(TOPS[bins] > 4000)
    assert EditRegion(ranges=((0.5, 9.0),)).check(1.0, SR).ranges == ((0.5, 1.0),)  # clipped to the input


def test_keep_weights_and_latent_keep():
    regen_t = np.zeros(16, dtype=bool)
    regen_t[4:12] = True
    regen_f = np.ones(8, dtype=bool)
    regen_f[:3] = False  # low band kept
    w = keep_weights(regen_t, regen_f, feather_t=2, feather_f=0).numpy()
    assert w.shape == (16, 8)
    assert np.all(w[:, :3] == 1) and np.all(w[:4] == 1) and np.all(w[12:] == 1)  # every kept cell stays 1
    np.testing.assert_allclose(w[4:12, 5], [2 / 3, 1 / 3, 0, 0, 0, 0, 1 / 3, 2 / 3])
    keep = latent_keep(regen_t, regen_f, factor=4).numpy()  # [4, 2]
    np.testing.assert_array_equal(keep, [[1, 1], [0, 0], [0, 0], [1, 1]])  # bin 0-3 has a regenerated bin


@pytest.mark.parametrize(("rate", "expected"), [(8000, 4000), (11025, 5512), (6000, 3000), (16000, 8000)])
def test_detect_cutoff_of_resampled_noise(rate, expected):
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    wav = resample(resample(noise, SR, rate), rate, SR)
    assert detect_cutoff_hz(wav, SR) == pytest.approx(expected, abs=150)


def test_detect_cutoff_ignores_silence_and_the_file_edges():
    rng = np.random.default_rng(1)
    burst = resample(rng.standard_normal(4000).astype(np.float32), 8000, SR)  # 0.5 s band-limited to 4 kHz
    wav = np.concatenate([np.zeros(3 * SR, np.float32), burst, np.zeros(2 * SR, np.float32)])
    assert detect_cutoff_hz(wav, SR) == pytest.approx(4000, abs=150)
    with pytest.raises(InputError, match="silent"):
        detect_cutoff_hz(np.zeros(SR, np.float32), SR)


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp-2m", "euler", "unipc"])
def test_keep_blend_ends_on_the_input_and_follows_the_noise_level(sampler):
    scheduler = make_scheduler(sampler, AUDIOLDM_SCHEDULER)
    scheduler.set_timesteps(6)
    timesteps = img2img_timesteps(scheduler, 6, 0.5)
    assert len(timesteps) == 3 and torch.equal(timesteps, scheduler.timesteps[3:])
    x0, noise = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    keep = torch.zeros(4, 4)
    keep[:2] = 1
    blend = KeepBlend(scheduler, timesteps, x0, noise, keep)
    latents = scheduler.add_noise(x0, noise, timesteps[:1])
    for i, t in enumerate(timesteps):
        latents = scheduler.step(torch.randn_like(latents), t, latents).prev_sample
        free = latents[:, :, 2:].clone()
        latents = blend(i, latents)
        assert torch.equal(latents[:, :, 2:], free)  # the regenerated cells are the sampler's
    torch.testing.assert_close(latents[:, :, :2], x0[:, :, :2], atol=0, rtol=0)


def test_strength_zero_has_no_step():
    scheduler = make_scheduler("ddim", AUDIOLDM_SCHEDULER)
    scheduler.set_timesteps(10)
    assert len(img2img_timesteps(scheduler, 10, 0.0)) == 0
    assert len(img2img_timesteps(scheduler, 10, 0.25)) == 2  # int(10 * 0.25), as diffusers
