"""The HiFi-GAN vocoder: transformers' ``SpeechT5HifiGan``, log-mel [B, T, 64] -> waveform [B, 160 * T + 32].

The transposed convolutions (padding (k - u) // 2) overhang by 32 samples at AudioLDM's sizes; callers trim
the waveform to 160 * T, as AudioLDM does.
"""

from __future__ import annotations

from typing import Any

from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

# AudioLDM's HiFi-GAN (16 kHz, hop 160 = 5 * 4 * 2 * 2 * 2): HIFIGAN_16K_64 in audioldm/hifigan/utilities.py,
# checked against the original Generator in tests/models/test_builders.py.
AUDIOLDM_S_VOCODER: dict[str, Any] = {
    "model_in_dim": 64,
    "sampling_rate": 16000,
    "upsample_initial_channel": 1024,
    "upsample_rates": [5, 4, 2, 2, 2],
    "upsample_kernel_sizes": [16, 16, 8, 4, 4],
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "normalize_before": False,
}


def build_vocoder(**kwargs: Any) -> SpeechT5HifiGan:
    """Build a HiFi-GAN from AudioLDM-S defaults overridden by ``kwargs`` (``SpeechT5HifiGanConfig`` fields)."""
    return SpeechT5HifiGan(SpeechT5HifiGanConfig(**{**AUDIOLDM_S_VOCODER, **kwargs}))
