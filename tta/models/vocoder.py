"""Vocoders: log-mel [B, T, 64] -> waveform.

* ``"hifigan"``: transformers' ``SpeechT5HifiGan`` (AudioLDM's vocoder; -> [B, 160 * T + 32]: the transposed
  convolutions (padding (k - u) // 2) overhang by 32 samples at AudioLDM's sizes; callers trim the waveform
  to 160 * T, as AudioLDM does).
* ``"istft"``: :class:`tta.models.istft_vocoder.ISTFTVocoder` (frame-rate ConvNeXt + inverse STFT; -> exactly
  [B, 160 * T]), the CPU default that ``tta train vocoder`` ships.

A vocoder folder's ``config.json`` names its class through ``model_type`` (:func:`vocoder_class`).
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


ARCHITECTURES = ("hifigan", "istft")


def build_vocoder(architecture: str = "hifigan", **kwargs: Any):
    """Build a vocoder: ``"hifigan"`` from AudioLDM-S defaults overridden by ``kwargs`` (``SpeechT5HifiGanConfig``
    fields), or ``"istft"`` from ``ISTFTVocoderConfig`` fields."""
    if architecture == "hifigan":
        return SpeechT5HifiGan(SpeechT5HifiGanConfig(**{**AUDIOLDM_S_VOCODER, **kwargs}))
    if architecture == "istft":
        from tta.models.istft_vocoder import ISTFTVocoder, ISTFTVocoderConfig

        return ISTFTVocoder(ISTFTVocoderConfig(**kwargs))
    raise ValueError(f"unknown vocoder architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")


def vocoder_class(config: dict[str, Any]) -> type:
    """The model class of a vocoder folder's ``config.json`` (by ``model_type``; HiFi-GAN when absent)."""
    if config.get("model_type") == "tta_istft_vocoder":
        from tta.models.istft_vocoder import ISTFTVocoder

        return ISTFTVocoder
    return SpeechT5HifiGan


def set_vocoder_refine(vocoder, refine: bool) -> bool:
    """Switch the ISTFT vocoder's refinement to the mel (its ``refine_*`` iterations, fixed maths run after the
    network) off, or leave it as the model's config has it; returns whether it runs. The refinement improves
    the vocoder on real mels but not generation (checkpoints/README.md), and is a third of the vocoder's time."""
    config = getattr(vocoder, "config", None)
    if not hasattr(config, "refine_fit_iterations"):
        return False
    if not refine:
        config.refine_fit_iterations = config.refine_griffin_lim_iterations = 0
    return bool(config.refine_fit_iterations or config.refine_griffin_lim_iterations)
