"""TTAPipeline.edit on a tiny random model: style transfer, inpainting and super-resolution against references
computed directly with the diffusers / transformers modules and diffusers' img2img and inpainting rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tta.audio.io import normalize_waveform, resample
from tta.audio.mel import MelSpectrogram
from tta.editing import EditRegion
from tta.editing.regions import keep_weights, mel_bin_tops
from tta.errors import InputError
from tta.sampling import make_scheduler

SR = 16000
KW = {"num_inference_steps": 4, "progress": False}


@pytest.fixture(scope="module")
def wav():
    """0.4 s of noise with a louder middle, at 16 kHz."""
    x = np.random.default_rng(0).standard_normal(int(0.4 * SR)).astype(np.float32) * 0.1
    x[3000:6000] *= 4
    return x


def reference_x0(pipe, wav: np.ndarray) -> torch.Tensor:
    """The input's latents from the modules themselves: AudioLDM's normalisation and log-mel, silence padding to
    the UNet's frames, the VAE posterior's mode times the scaling factor."""
    x = torch.from_numpy(normalize_waveform(wav))
    mel = MelSpectrogram(n_mels=pipe.vocoder.config.model_in_dim)(x)  # [T, 64]
    frames = pipe.layout(len(wav) / SR).mel_frames
    mel = torch.cat([mel, torch.full((frames - mel.shape[0], mel.shape[1]), math.log(1e-5))])
    with torch.no_grad():
        return pipe.vae.encode(mel[None, None]).latent_dist.mode() * pipe.vae.config.scaling_factor


def reference_decode(pipe, latents: torch.Tensor, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Latents -> (log-mel [B, T, F], waveform [B, N]) straight through the diffusers VAE and the HiFi-GAN."""
    frames = math.ceil(num_samples / pipe.hop_length)
    with torch.no_grad():
        mel = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample[:, 0, :frames]
        audio = pipe.vocoder(mel)[:, :num_samples]
    return mel.numpy(), audio.numpy()


def reference_img2img(pipe, x0, prompt, sampler, steps, strength, seed, guidance=2.5):
    """diffusers' img2img recipe written out: skip the first (1 - strength) of the timesteps, noise the input to
    the first remaining one, run the scheduler with classifier-free guidance on the UNet."""
    scheduler = make_scheduler(sampler, pipe.scheduler_config)
    scheduler.set_timesteps(steps)
    t_start = steps - int(steps * strength)
    timesteps = scheduler.timesteps[t_start:]
    if hasattr(scheduler, "set_begin_index"):  # multistep schedulers (as diffusers' img2img pipelines)
        scheduler.set_begin_index(t_start)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    x = scheduler.add_noise(x0, noise, timesteps[:1])
    labels = torch.cat([pipe.clap.encode_text([""]), pipe.clap.encode_text([prompt])])
    with torch.no_grad():
        for t in timesteps:
            x_in = scheduler.scale_model_input(torch.cat([x, x]), t)
            uncond, cond = pipe.unet(x_in, t, encoder_hidden_states=None, class_labels=labels).sample.chunk(2)
            x = scheduler.step(uncond + guidance * (cond - uncond), t, x).prev_sample
    return x


def test_strength_zero_is_the_vae_vocoder_round_trip(tiny_pipe, wav):
    out = tiny_pipe.edit(wav, "a dog barks", sample_rate=SR, strength=0.0, seed=1, **KW)
    mel, audio = reference_decode(tiny_pipe, reference_x0(tiny_pipe, wav), len(wav))
    assert out.audios.shape == (1, len(wav)) and out.mels.shape == (1, math.ceil(len(wav) / 160), 64)
    np.testing.assert_allclose(out.mels, mel, atol=1e-4)
    np.testing.assert_allclose(out.audios, audio, atol=1e-4)
    other = tiny_pipe.edit(wav, "thunder", sample_rate=SR, strength=0.0, seed=2, **KW)  # no step runs
    np.testing.assert_array_equal(other.audios, out.audios)


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp-2m"])
def test_partial_strength_follows_diffusers_img2img(tiny_pipe, wav, sampler):
    out = tiny_pipe.edit(wav, "a dog barks", sample_rate=SR, strength=0.5, seed=3, sampler=sampler, **KW)
    latents = reference_img2img(tiny_pipe, reference_x0(tiny_pipe, wav), "a dog barks", sampler, 4, 0.5, 3)
    _, audio = reference_decode(tiny_pipe, latents, len(wav))
    np.testing.assert_allclose(out.audios, audio, atol=1e-4)
    start = tiny_pipe.edit(wav, "a dog barks", sample_rate=SR, strength=0.0, **KW).audios
    assert not np.allclose(out.audios, start, atol=1e-3)  # it did change the audio


def test_strength_one_is_text_to_audio_of_the_same_length(tiny_pipe, wav):
    edit = tiny_pipe.edit(wav, "rain on a roof", sample_rate=SR, strength=1.0, seed=4, **KW)
    gen = tiny_pipe("rain on a roof", audio_length_in_s=len(wav) / SR, seed=4, **KW)
    np.testing.assert_array_equal(edit.audios, gen.audios)


def test_array_at_another_rate_is_resampled(tiny_pipe, wav):
    low = resample(wav, SR, 22050)
    out = tiny_pipe.edit(low, "a dog", sample_rate=22050, strength=0.0, **KW)
    assert abs(out.audios.shape[1] - len(wav)) <= 1


def test_inpainting_keeps_the_rest_exactly_and_blends_each_step(tiny_pipe, wav):
    steps_seen = []
    out = tiny_pipe.inpaint(
        wav,
        "a cat meows",
        [(0.16, 0.24)],
        sample_rate=SR,
        seed=5,
        sampler="ddim",
        feather_s=0.0,
        callback=lambda i, t, x: steps_seen.append((t, x.clone())),
        **KW,
    )
    x0 = reference_x0(tiny_pipe, wav)
    ref_mel, _ = reference_decode(tiny_pipe, x0, len(wav))
    kept = np.r_[0:16, 24:40]  # mel frames outside 0.16-0.24 s (100 frames/s)
    np.testing.assert_allclose(out.mels[0, kept], ref_mel[0, kept], atol=1e-4)
    assert np.abs(out.mels[0, 16:24] - ref_mel[0, 16:24]).mean() > 0.1  # the range was regenerated
    # RePaint-style blend: after each step the kept latent frames hold the input noised to the next level
    scheduler = make_scheduler("ddim", tiny_pipe.scheduler_config)
    scheduler.set_timesteps(4)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    kept_latent = np.r_[0:4, 6:10]  # latent frame h covers mel frames 4h..4h+3
    for i, (_, latents) in enumerate(steps_seen):
        nxt = scheduler.timesteps[i + 1 : i + 2]
        known = scheduler.add_noise(x0, noise, nxt) if i + 1 < len(steps_seen) else x0
        torch.testing.assert_close(latents[:, :, kept_latent], known[:, :, kept_latent], atol=1e-5, rtol=0)
        assert not torch.allclose(latents[:, :, 4:6], known[:, :, 4:6], atol=1e-3)


def test_inpainting_feather_fades_in_from_the_input(tiny_pipe, wav):
    kw = {"sample_rate": SR, "seed": 6, **KW}
    hard = tiny_pipe.inpaint(wav, "a cat", [(0.1, 0.3)], feather_s=0.0, **kw).mels[0]
    soft = tiny_pipe.inpaint(wav, "a cat", [(0.1, 0.3)], feather_s=0.03, **kw).mels[0]
    ref = reference_decode(tiny_pipe, reference_x0(tiny_pipe, wav), len(wav))[0][0]
    regen_t = np.zeros(len(ref), dtype=bool)
    regen_t[10:30] = True
    w = keep_weights(regen_t, np.ones(64, dtype=bool), 3, 0).numpy()[:, :1]  # [T, 1]
    assert w[10, 0] == pytest.approx(0.75) and w[13, 0] == 0.0 and w[29, 0] == pytest.approx(0.75)
    np.testing.assert_allclose(soft - ref, (1 - w) * (hard - ref), atol=1e-4)


def test_super_resolution_detects_the_band_and_keeps_it(tiny_pipe, wav, rate=8000):
    low = resample(wav, SR, rate)  # a recording made at `rate`: nothing above rate / 2
    out = tiny_pipe.super_resolve(low, sample_rate=rate, seed=7, **KW)
    assert out.region.above_hz == pytest.approx(rate / 2, abs=100)
    tops = mel_bin_tops(MelSpectrogram().mel_basis, SR, 1024)
    keep = tops <= out.region.above_hz
    ref = tiny_pipe.edit(low, "x", sample_rate=rate, strength=0.0, **KW).mels[0]
    np.testing.assert_allclose(out.mels[0][:, keep], ref[:, keep], atol=1e-4)
    assert np.abs(out.mels[0][:, ~keep] - ref[:, ~keep]).mean() > 0.1  # the high band was generated
    assert keep.sum() > 10 and (~keep).sum() > 10


def test_super_resolution_with_a_given_cutoff_and_on_full_band_input(tiny_pipe, wav):
    out = tiny_pipe.super_resolve(wav, sample_rate=SR, cutoff_hz=2000, seed=8, **KW)
    assert out.region == EditRegion(above_hz=2000.0)
    with pytest.raises(InputError, match="already has content up to"):
        tiny_pipe.super_resolve(wav, sample_rate=SR, **KW)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strength": 1.5}, "strength must be between 0 and 1"),
        ({"strength": -0.1}, "strength must be between 0 and 1"),
        ({"strength": float("nan")}, "strength must be between 0 and 1"),
        ({"prompt": "  "}, "the prompt is empty"),
        ({"sample_rate": None}, "needs its sample rate"),
        ({"region": EditRegion(ranges=((0.4, 0.2),))}, "0 <= start < end"),
        ({"region": EditRegion(ranges=((5.0, 6.0),))}, "starts after the input's end"),
        ({"region": EditRegion(above_hz=9000)}, "cut-off must be between"),
    ],
)
def test_bad_edit_inputs(tiny_pipe, wav, kwargs, match):
    args = {"prompt": "a dog", "sample_rate": SR, **kwargs}
    with pytest.raises(InputError, match=match):
        tiny_pipe.edit(wav, **args, **KW)


def test_bad_audio_inputs(tiny_pipe, tmp_path):
    import soundfile as sf

    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    with pytest.raises(InputError, match="cannot read audio file"):
        tiny_pipe.edit(text, "a dog", **KW)
    long = tmp_path / "two_hours.flac"
    sf.write(long, np.zeros(2 * 3600 * 8000, dtype=np.int16), 8000)  # 2 h of silence: ~200 kB of FLAC
    with pytest.raises(InputError, match="lasts 7200.0 s; edits take at most 60 s"):
        tiny_pipe.edit(long, "a dog", **KW)
    with pytest.raises(InputError, match="at least 0.1 s"):
        tiny_pipe.edit(np.zeros(100, dtype=np.float32), "a dog", sample_rate=SR, **KW)
    with pytest.raises(InputError, match="NaN"):
        tiny_pipe.edit(np.full(SR, np.nan, dtype=np.float32), "a dog", sample_rate=SR, **KW)


def test_upload_size_is_checked_before_reading(tmp_path):
    import soundfile as sf

    from tta.editing import load_edit_audio

    path = tmp_path / "big.wav"
    sf.write(path, np.zeros(SR, dtype=np.float32), SR)
    with pytest.raises(InputError, match="MB; audio inputs are limited to 0 MB"):
        load_edit_audio(path, None, SR, max_bytes=1000)
    assert load_edit_audio(path, None, SR).shape == (SR,)
