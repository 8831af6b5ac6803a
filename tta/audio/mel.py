"""AudioLDM's log-mel front-end as a torch module.

Matches the original ``TacotronSTFT`` (audioldm/audio/stft.py) followed by ``_pad_spec``
(audioldm/audio/tools.py): reflect padding of n_fft / 2 on each side (librosa's ``center=True``), periodic
Hann window, magnitude STFT, librosa's slaney mel basis, ``ln(clamp(mel, 1e-5))``. The original yields
N // hop + 1 frames and AudioLDM keeps the first ``target_length`` = N // hop of them; so does this module:
N samples give exactly N // 160 frames (100 frames/s).
"""

from __future__ import annotations

import librosa
import torch
from torch import nn

from tta.errors import InputError


class MelSpectrogram(nn.Module):
    """Waveform [B, N] in [-1, 1] -> log-mel [B, T, n_mels] with T = N // hop_length."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 160,
        win_length: int = 1024,
        n_mels: int = 64,
        f_min: float = 0.0,
        f_max: float = 8000.0,
        log_floor: float = 1e-5,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.n_mels = n_mels
        self.log_floor = log_floor
        mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)
        self.register_buffer("mel_basis", torch.from_numpy(mel).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(win_length, periodic=True), persistent=False)

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform [B, N] -> magnitude STFT [B, n_fft // 2 + 1, T] with T = N // hop_length."""
        pad = self.n_fft // 2
        if wav.shape[-1] <= pad:
            raise InputError(f"waveform too short for a log-mel: {wav.shape[-1]} samples, need more than {pad}")
        x = torch.nn.functional.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            x,
            self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window.to(x.dtype),
            center=False,
            return_complex=True,
        )
        return spec.abs()[..., : self.num_frames(wav.shape[-1])]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform [B, N] (or [N]) -> log-mel [B, T, n_mels] (or [T, n_mels])."""
        squeeze = wav.dim() == 1
        if squeeze:
            wav = wav.unsqueeze(0)
        mel = torch.matmul(self.mel_basis.to(wav.dtype), self.magnitude(wav))
        logmel = torch.log(torch.clamp(mel, min=self.log_floor)).transpose(1, 2)
        return logmel[0] if squeeze else logmel

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a waveform of ``num_samples`` samples."""
        return num_samples // self.hop_length
