"""Round-trip metrics, the Griffin-Lim baseline, the VAE + vocoder round trip and the component loaders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.evaluation.tiny_decoder import build_tiny_vae_vocoder, save_decoder_folder
from tta.audio.io import save_audio
from tta.audio.mel import MelSpectrogram
from tta.errors import InputError, ModelLoadError
from tta.evaluation.reconstruction import (
    MRSTFT_RESOLUTIONS,
    evaluate_round_trip,
    griffin_lim_from_mel,
    log_mel_l1,
    log_spectral_distance,
    mrstft_distance,
    reconstruct,
    round_trip_metrics,
    spectral_flatness_bias,
    vae_round_trip,
)
from tta.loading import load_vae, load_vocoder

SR = 16000
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def mel():
    return MelSpectrogram()


@pytest.fixture(scope="module")
def models():
    return build_tiny_vae_vocoder()


def chirp(seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.4 * np.sin(2 * np.pi * (200 + 1500 * t) * t)).astype(np.float32)


def noise(n: int, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- metrics


def test_metrics_are_zero_for_identical_signals(mel):
    x = chirp() + noise(8000)
    assert log_mel_l1(x, x, mel) == 0.0
    assert log_spectral_distance(x, x) == 0.0
    total, per = mrstft_distance(x, x)
    assert total == 0.0 and set(per) == {f"{n}/{h}/{w}" for n, h, w in MRSTFT_RESOLUTIONS}
    assert all(v == 0.0 for v in per.values())


def test_metrics_grow_with_added_noise(mel):
    x = chirp()
    scores = [round_trip_metrics(x, x + noise(x.size, scale=s), mel) for s in (0.001, 0.01, 0.1)]
    for key in ("log_mel_l1", "lsd", "mrstft", "mrstft_256/64/256", "mrstft_2048/512/2048"):
        values = [s[key] for s in scores]
        assert 0 < values[0] < values[1] < values[2], (key, values)


def test_flatness_bias_tells_metallic_from_noisy():
    """Tones added to noise make an estimate more tonal (negative bias); noise added to tones the opposite."""
    t = np.arange(SR) / SR
    tones = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (440.0, 1250.0, 3100.0)).astype(np.float32)
    hiss = noise(SR, seed=3, scale=0.1)
    assert spectral_flatness_bias(hiss, hiss) == (0.0, 0.0)
    bias, error = spectral_flatness_bias(hiss, hiss + tones)
    assert bias < -3.0 and error == pytest.approx(-bias)  # every frame got more tonal
    bias, error = spectral_flatness_bias(tones, tones + hiss)
    assert bias > 3.0 and error == pytest.approx(bias)
    white, own = spectral_flatness_bias(tones, noise(SR, seed=4))[0], spectral_flatness_bias(tones, tones * 0.5)[0]
    assert white > 20.0 and own == pytest.approx(0.0, abs=1e-6)  # gain leaves flatness alone


def test_symmetry_and_total_is_the_mean(mel):
    a, b = chirp() + noise(8000, 1), noise(8000, 2)
    assert log_mel_l1(a, b, mel) == pytest.approx(log_mel_l1(b, a, mel), rel=1e-9)
    assert log_spectral_distance(a, b) == pytest.approx(log_spectral_distance(b, a), rel=1e-9)
    total, per = mrstft_distance(a, b)
    assert total == pytest.approx(np.mean(list(per.values())))
    assert total != pytest.approx(mrstft_distance(b, a)[0], rel=1e-3)  # spectral convergence is not symmetric


@pytest.mark.parametrize("gain", [2.0, 0.5, 10.0])
def test_lsd_of_a_scaled_signal_is_its_gain_in_db(gain):
    x = noise(8000, scale=0.3)  # every bin far above the power floor
    assert log_spectral_distance(x, gain * x) == pytest.approx(abs(20 * math.log10(gain)), rel=1e-6)
    assert log_spectral_distance(x, gain * x, n_fft=512, hop=128) == pytest.approx(abs(20 * math.log10(gain)))


def test_metrics_accept_tensors_batches_and_short_clips(mel):
    x = torch.from_numpy(noise(2 * 4000)).reshape(2, 4000)
    assert log_mel_l1(x, x * 0.5, mel) == pytest.approx(math.log(2), abs=1e-4)
    assert mrstft_distance(x[0, :600], x[0, :600] * 0.5)[0] > 0  # shorter than the 2048 window: zero-padded


def test_mismatched_shapes_are_an_error(mel):
    with pytest.raises(InputError, match="differ in shape"):
        log_spectral_distance(np.zeros(1000), np.zeros(999))
    with pytest.raises(InputError, match="differ in shape"):
        log_mel_l1(np.zeros(1000), np.zeros(1600), mel)


# ---------------------------------------------------------------------------------------------- Griffin-Lim


def test_griffin_lim_from_the_true_mel_beats_white_noise(mel):
    x = chirp(1.0)
    true_mel = mel(torch.from_numpy(x))  # [100, 64]
    gl = griffin_lim_from_mel(true_mel, mel, n_iter=30)
    assert gl.shape == (100 * 160,) and gl.dtype == np.float32
    white = noise(x.size, seed=3, scale=float(x.std()))
    assert mrstft_distance(x, gl)[0] < 0.5 * mrstft_distance(x, white)[0]
    assert log_mel_l1(x, gl, mel) < 0.25 * log_mel_l1(x, white, mel)
    np.testing.assert_array_equal(gl, griffin_lim_from_mel(true_mel.numpy(), mel, n_iter=30))  # fixed seed


def test_griffin_lim_checks_the_mel_shape(mel):
    with pytest.raises(InputError, match=r"log-mel \[T, 64\]"):
        griffin_lim_from_mel(np.zeros((10, 80)), mel)


# ---------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("n", [12345, 77 * 160, 8000])
def test_round_trip_keeps_the_length(models, mel, n):
    vae, vocoder = models
    x = chirp(1.0)[:n]
    for v in (vae, None):
        out = reconstruct(x, v, vocoder, mel)
        assert out.shape == (n,) and out.dtype == np.float32 and np.all(np.isfinite(out))
        assert np.abs(out).max() > 1e-3  # the tiny vocoder is audible


def test_vae_round_trip_pads_frames_and_cuts_back(models, mel):
    vae, _ = models
    m = mel(torch.from_numpy(chirp(1.0)))[:77][None, None]  # 77 frames: not a multiple of 2
    with torch.no_grad():
        out = vae_round_trip(m, vae)
    assert out.shape == (1, 1, 77, 64) and out.dtype == torch.float32


def test_round_trip_paths_differ_and_keep_the_input_level(models, mel):
    vae, vocoder = models
    x = chirp() + noise(8000)
    full, voc = reconstruct(x, vae, vocoder, mel), reconstruct(x, None, vocoder, mel)
    assert not np.allclose(full, voc)
    np.testing.assert_allclose(reconstruct(0.1 * x, None, vocoder, mel), 0.1 * voc, rtol=1e-3, atol=1e-6)


def test_evaluate_round_trip_averages_each_path(models, mel, tmp_path):
    vae, vocoder = models
    path = save_audio(tmp_path / "clip.wav", chirp(0.3))
    report = evaluate_round_trip([chirp(0.5) + noise(8000), path], vae, vocoder, mel, n_iter=4, progress=False)
    assert list(report) == ["griffin_lim", "vocoder", "vae+vocoder"]
    for metrics in report.values():
        assert metrics["clips"] == 2
        assert {"log_mel_l1", "lsd", "mrstft", "mrstft_512/128/512"} <= set(metrics)
        assert all(math.isfinite(v) and v >= 0 for v in metrics.values())
    # a random vocoder is no vocoder: Griffin-Lim from the true mel is far closer
    assert report["griffin_lim"]["log_mel_l1"] < report["vocoder"]["log_mel_l1"]
    no_vae = evaluate_round_trip([chirp(0.3)], None, vocoder, mel, n_iter=2, progress=False)
    assert list(no_vae) == ["griffin_lim", "vocoder"]
    with pytest.raises(InputError, match="no clips"):
        evaluate_round_trip([], vae, vocoder, mel, progress=False)


# ---------------------------------------------------------------------------------------------- loading


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory):
    return save_decoder_folder(tmp_path_factory.mktemp("decoder"))


def test_load_vae_and_vocoder_from_a_folder_without_unet(decoder_dir, models):
    vae, vocoder = load_vae(decoder_dir), load_vocoder(decoder_dir)
    assert not vae.training and not vocoder.training
    torch.testing.assert_close(vocoder.conv_post.weight, models[1].conv_post.weight)
    assert load_vocoder(decoder_dir / "vocoder").config.upsample_initial_channel == 32  # the component folder


@pytest.mark.parametrize(
    ("component", "damage", "message"),
    [
        ("vae", "delete weights", "missing weights {}/vae/diffusion_pytorch_model.safetensors"),
        ("vae", "corrupt config", "corrupt JSON file {}/vae/config.json"),
        ("vocoder", "delete config", "missing file {}/vocoder/config.json"),
        ("vocoder", "truncate weights", "cannot load {}/vocoder/model.safetensors"),
        ("vae", "truncate weights", "cannot load {}/vae/diffusion_pytorch_model.safetensors"),
    ],
)
def test_damaged_files_are_one_error_naming_the_file(tmp_path, component, damage, message):
    folder = save_decoder_folder(tmp_path / "model")
    weights = "diffusion_pytorch_model.safetensors" if component == "vae" else "model.safetensors"
    if damage == "delete weights":
        (folder / component / weights).unlink()
    elif damage == "delete config":
        (folder / component / "config.json").unlink()
    elif damage == "corrupt config":
        (folder / component / "config.json").write_text("{not json")
    else:
        data = (folder / component / weights).read_bytes()
        (folder / component / weights).write_bytes(data[: len(data) // 2])
    load = load_vae if component == "vae" else load_vocoder
    with pytest.raises(ModelLoadError) as err:
        load(folder)
    assert message.format(folder) in str(err.value) and "\n" not in str(err.value)


def test_missing_model_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="model folder not found"):
        load_vocoder(tmp_path / "nowhere")
