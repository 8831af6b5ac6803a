"""The audio codec around the diffusion model: waveform <-> log-mel <-> VAE latents, and the vocoder.

Plain functions over the modules, shared by the pipelines (:mod:`tta.pipelines.text_to_audio`,
:mod:`tta.pipelines.audio_to_audio`) and the LDM trainer, so encoding for training and decoding for sampling
cannot drift apart.

Shapes: waveforms [B, N] at the vocoder's rate; log-mels [B, 1, T, n_mels] (T = N / hop); latents
[B, C, T / f, n_mels / f] already multiplied by the VAE's ``scaling_factor`` (what the UNet sees).
"""

from __future__ import annotations

import numpy as np
import torch

VOCODER_MARGIN_FRAMES = 32  # extra mel frames vocoded past the kept end, then cut (receptive field)


def sample_rate(vocoder: torch.nn.Module) -> int:
    """The vocoder's output rate, Hz."""
    return int(vocoder.config.sampling_rate)


def hop_length(vocoder: torch.nn.Module) -> int:
    """Waveform samples per mel frame (the product of the vocoder's upsample rates)."""
    return int(np.prod(vocoder.config.upsample_rates))


def mel_frontend(vocoder: torch.nn.Module):
    """The log-mel front-end (:class:`tta.audio.mel.MelSpectrogram`) matching the vocoder: its rate, hop and mel
    bins, n_fft 1024, 0 Hz to Nyquist (AudioLDM's)."""
    from tta.audio.mel import MelSpectrogram

    rate = sample_rate(vocoder)
    return MelSpectrogram(
        sample_rate=rate, hop_length=hop_length(vocoder), n_mels=int(vocoder.config.model_in_dim), f_max=rate / 2
    )


def encode_mel(
    vae: torch.nn.Module, mel: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Log-mel [B, 1, T, n_mels] -> latents [B, C, T / f, n_mels / f] times the scaling factor (float32).

    ``sample=False``: the posterior's mode (deterministic; what editing starts from). ``sample=True``: a draw
    ``mean + std * noise`` with ``noise`` from ``generator`` (what the UNet trains on).
    """
    device = next(vae.parameters()).device
    posterior = vae.encode(mel.to(device=device, dtype=vae.dtype)).latent_dist
    if sample:
        noise = torch.randn(posterior.mean.shape, generator=generator, device=posterior.mean.device)
        z = posterior.mean + posterior.std * noise
    else:
        z = posterior.mode()
    return z.float() * vae.config.scaling_factor


def decode_mel(vae: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """Latents [B, C, H, W] -> log-mel [B, 1, H * f, W * f] (the VAE decoder, in the VAE's dtype)."""
    z = latents.to(vae.dtype) / vae.config.scaling_factor
    return vae.decode(z).sample


def vocode(vocoder: torch.nn.Module, mel: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
    """Log-mel [B, 1, T, n_mels] -> waveforms [B, T' * hop] (float32) of its first ``num_frames`` frames.

    A few frames past ``num_frames`` are vocoded too and cut off afterwards, so the kept end sounds as it does
    when the whole mel is vocoded (the vocoder's receptive field spans several frames).
    """
    keep = mel.shape[2] if num_frames is None else min(int(num_frames), mel.shape[2])
    mel = mel[:, 0, : keep + VOCODER_MARGIN_FRAMES].to(vocoder.dtype).contiguous()  # [B, T'', n_mels]
    return vocoder(mel).float()[:, : keep * hop_length(vocoder)]  # [B, T' * hop]


def decode(
    vae: torch.nn.Module, vocoder: torch.nn.Module, latents: torch.Tensor, num_frames: int | None = None
) -> torch.Tensor:
    """Latents [B, C, H, W] -> waveforms [B, T * hop], float32 (VAE decoder, then the vocoder on the first
    ``num_frames`` mel frames: frames that only pad the latents for the UNet are not worth vocoding)."""
    return vocode(vocoder, decode_mel(vae, latents), num_frames)
