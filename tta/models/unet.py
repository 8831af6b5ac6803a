"""The diffusion UNet: diffusers' ``UNet2DConditionModel`` set up as AudioLDM's.

AudioLDM conditions on the CLAP embedding with FiLM: the 512-d embedding is projected and concatenated
to the time embedding (``class_embed_type="simple_projection"``, ``class_embeddings_concat=True``).
The transformer blocks' second attention is self-attention when no ``encoder_hidden_states`` are given
(AudioLDM has no text cross-attention); extra conditions (retrieval) can enter there later.

Latents are [B, C=8, T/4, F=16]: time along height, mel frequency along width.
"""

from __future__ import annotations

from typing import Any

from diffusers import UNet2DConditionModel

# audioldm-s-full (audioldm/utils.py default_audioldm_config): model_channels 128, channel_mult [1, 2, 3, 5],
# attention_resolutions [8, 4, 2] (levels 1-3), num_head_channels 32 (heads = channels / 32), 2 res blocks per
# level, no context (each transformer's second attention is self-attention: cross_attention_dim = channels).
# Checked against the original UNetModel in tests/models/test_builders.py.
AUDIOLDM_S_UNET: dict[str, Any] = {
    "in_channels": 8,
    "out_channels": 8,
    "block_out_channels": [128, 256, 384, 640],
    "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "cross_attention_dim": [128, 256, 384, 640],
    "attention_head_dim": [4, 8, 12, 20],
    "class_embed_type": "simple_projection",
    "projection_class_embeddings_input_dim": 512,
    "class_embeddings_concat": True,
    "norm_num_groups": 32,
}


def build_unet(**kwargs: Any) -> UNet2DConditionModel:
    """Build a UNet from AudioLDM-S defaults overridden by ``kwargs`` (``UNet2DConditionModel`` arguments)."""
    return UNet2DConditionModel(**{**AUDIOLDM_S_UNET, **kwargs})


def unet_downsample_factor(unet: UNet2DConditionModel) -> int:
    """How many latent frames one UNet step of down-sampling spans: 2 ** (number of down-sampling blocks)."""
    return 2 ** (len(unet.config.block_out_channels) - 1)
