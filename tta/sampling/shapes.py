"""Latent shapes for a requested duration: pad up to what the VAE and UNet need, trim the audio after.

A duration of ``d`` seconds is ``N = round(d * sample_rate)`` samples and ``ceil(N / hop)`` mel frames; the
latent time axis is the mel frames / VAE factor, padded up to a multiple of the UNet's down-sampling factor so
that every UNet level sees whole frames. After decoding, the waveform is cut back to ``N`` samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tta.errors import InputError

MAX_DURATION_S = 60.0  # longest audio one call generates (the UNet is trained on ~10 s clips)
DEFAULT_DURATION_S = 5.0


@dataclass(frozen=True)
class LatentLayout:
    """Where a duration lands. ``latent_shape`` is [C, H, W] per waveform; ``num_samples`` the audio to keep."""

    num_samples: int
    mel_frames: int  # padded mel frames the VAE decodes
    latent_shape: tuple[int, int, int]


def check_duration(duration_s: float) -> float:
    """Validate a duration in seconds: finite, > 0 and <= :data:`MAX_DURATION_S`."""
    try:
        duration_s = float(duration_s)
    except (TypeError, ValueError) as err:
        raise InputError(f"duration must be a number of seconds, got {duration_s!r}") from err
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise InputError(f"duration must be > 0 seconds, got {duration_s}")
    if duration_s > MAX_DURATION_S:
        raise InputError(f"duration {duration_s} s is beyond the maximum of {MAX_DURATION_S:g} s")
    return duration_s


def latent_layout(
    duration_s: float,
    sample_rate: int,
    hop_length: int,
    latent_channels: int,
    n_mels: int,
    vae_factor: int,
    unet_factor: int,
) -> LatentLayout:
    """Latent shape and sample count for ``duration_s`` seconds (see the module docstring)."""
    duration_s = check_duration(duration_s)
    num_samples = max(1, round(duration_s * sample_rate))
    frames = math.ceil(num_samples / hop_length)
    multiple = vae_factor * unet_factor
    frames = math.ceil(frames / multiple) * multiple
    if n_mels % vae_factor:
        raise InputError(f"{n_mels} mel bins are not divisible by the VAE factor {vae_factor}")
    shape = (latent_channels, frames // vae_factor, n_mels // vae_factor)
    return LatentLayout(num_samples=num_samples, mel_frames=frames, latent_shape=shape)
