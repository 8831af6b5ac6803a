"""The mel-spectrogram VAE: diffusers' ``AutoencoderKL`` on log-mels seen as one-channel images.

Input [B, 1, T, 64] (time along height, mel bins along width); latents [B, 8, T/4, 16] for three
levels (two 2x down-samplings). ``scaling_factor`` (1 / std of latents) lives in the config.
"""

from __future__ import annotations

from typing import Any

from diffusers import AutoencoderKL

# audioldm-s-full (audioldm/utils.py default_audioldm_config ddconfig): ch 128, ch_mult [1, 2, 4], 2 res blocks,
# z_channels = embed_dim = 8, GroupNorm(32). Checked against the original Encoder/Decoder in tests/models/test_builders.py.
AUDIOLDM_S_VAE: dict[str, Any] = {
    "in_channels": 1,
    "out_channels": 1,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [128, 256, 512],
    "layers_per_block": 2,
    "latent_channels": 8,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 1.0,
}


def build_vae(**kwargs: Any) -> AutoencoderKL:
    """Build a VAE from AudioLDM-S defaults overridden by ``kwargs`` (``AutoencoderKL`` arguments).

    When only ``block_out_channels`` is given, the block types follow its length (one per level).
    """
    config = {**AUDIOLDM_S_VAE, **kwargs}
    levels = len(config["block_out_channels"])
    if "down_block_types" not in kwargs:
        config["down_block_types"] = ["DownEncoderBlock2D"] * levels
    if "up_block_types" not in kwargs:
        config["up_block_types"] = ["UpDecoderBlock2D"] * levels
    return AutoencoderKL(**config)


def vae_downsample_factor(vae: AutoencoderKL) -> int:
    """Down-sampling of the VAE along each axis: 2 ** (levels - 1)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def latent_grid(vae: AutoencoderKL, n_mels: int) -> tuple[int, int]:
    """(channels, frequency bins) of the VAE's latents of ``n_mels``-bin log-mels."""
    return int(vae.config.latent_channels), int(n_mels) // vae_downsample_factor(vae)
