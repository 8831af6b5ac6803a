"""A tiny random VAE + vocoder pair (seeded) and model folders holding only ``vae/`` and ``vocoder/``."""

from __future__ import annotations

from pathlib import Path

import torch

TINY_VAE = {
    "block_out_channels": [8, 16],
    "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2,
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
}
TINY_VOCODER = {
    "upsample_initial_channel": 32,
    "upsample_kernel_sizes": [10, 8, 4, 4, 4],
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3]],
}


def build_tiny_vae_vocoder(seed: int = 0):
    """(vae, vocoder) in eval mode; the vocoder re-initialised with unit-gain convolutions so that it is audible
    (its default init leaves ~1e-5 of signal)."""
    from tta.models.vae import build_vae
    from tta.models.vocoder import build_vocoder

    torch.manual_seed(seed)
    vae = build_vae(**TINY_VAE).eval()
    vocoder = build_vocoder(**TINY_VOCODER).eval()
    with torch.no_grad():
        for module in vocoder.modules():
            if isinstance(module, torch.nn.Conv1d):
                torch.nn.init.normal_(module.weight, std=module.weight[0].numel() ** -0.5)
            elif isinstance(module, torch.nn.ConvTranspose1d):
                torch.nn.init.normal_(module.weight, std=module.weight[:, 0].numel() ** -0.5)
    return vae, vocoder


def save_decoder_folder(folder: Path, vae: bool = True) -> Path:
    """A model folder with ``vocoder/`` (and ``vae/``) only: no UNet, CLAP or ``model_index.json``."""
    vae_model, vocoder = build_tiny_vae_vocoder()
    if vae:
        vae_model.save_pretrained(str(folder / "vae"), safe_serialization=True)
    vocoder.save_pretrained(str(folder / "vocoder"), safe_serialization=True)
    return folder
