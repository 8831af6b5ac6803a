"""The log-mel front-end against librosa and against the original AudioLDM ``TacotronSTFT`` (to 1e-5)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from tests.reference import audio_tools, tacotron_stft
from tta.audio.mel import MelSpectrogram

SR = 16000


def _signals(num_samples: int = 24000) -> torch.Tensor:
    """Three test waveforms [3, N] in [-1, 1]: white noise, a chirp over noise, decaying noise."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(num_samples) / SR
    chirp = 0.3 * torch.sin(2 * np.pi * (200 + 2000 * t) * t) + 0.05 * torch.randn(num_samples, generator=g)
    decaying = 0.2 * torch.randn(num_samples, generator=g) * torch.exp(-3 * t)
    noise = 0.3 * torch.randn(num_samples, generator=g)
    return torch.stack([noise, chirp, decaying]).clamp(-1, 1)


def _librosa_logmel(wav: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=wav, sr=SR, n_fft=1024, hop_length=160, win_length=1024, window="hann", center=True,
        pad_mode="reflect", power=1.0, n_mels=64, fmin=0.0, fmax=8000.0,
    )  # fmt: skip
    return np.log(np.maximum(mel, 1e-5)).swapaxes(-1, -2)[..., : wav.shape[-1] // 160, :]


def test_shape_and_frames():
    mel = MelSpectrogram()
    assert mel(torch.zeros(2, 16000)).shape == (2, 100, 64)
    assert mel(torch.zeros(16160)).shape == (101, 64)
    assert mel.num_frames(163840) == 1024
    silent = mel(torch.zeros(1, 3200))
    assert torch.allclose(silent, torch.full_like(silent, np.log(1e-5)))


def test_matches_librosa():
    wav = _signals()
    ours = MelSpectrogram()(wav).numpy()
    ref = _librosa_logmel(wav.numpy())
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 1e-5


def test_matches_original_tacotron_stft():
    stft = tacotron_stft(
        filter_length=1024, hop_length=160, win_length=1024, n_mel_channels=64, sampling_rate=SR, mel_fmin=0,
        mel_fmax=8000,
    )  # fmt: skip
    tools = audio_tools()
    wav = _signals()
    ours = MelSpectrogram()(wav)
    for i in range(wav.shape[0]):
        mel, _, _ = stft.mel_spectrogram(wav[i : i + 1])  # [1, 64, N // 160 + 1]
        ref = tools._pad_spec(mel[0].T, target_length=wav.shape[-1] // 160)  # AudioLDM keeps N // 160 frames
        assert ours[i].shape == ref.shape
        assert (ours[i] - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_batch_consistency(dtype):
    mel = MelSpectrogram().to(dtype)
    wav = _signals(8000).to(dtype)
    batch = mel(wav)
    assert batch.dtype == dtype
    for i in range(wav.shape[0]):
        assert torch.allclose(mel(wav[i]), batch[i], atol=1e-5)


def test_too_short_is_a_clear_error():
    from tta.errors import InputError

    with pytest.raises(InputError, match="too short"):
        MelSpectrogram()(torch.zeros(1, 400))
