"""Tango / Tango 2 (declare-lab): FLAN-T5 hidden states and their mask through cross-attention of a diffusers
``UNet2DConditionModel``, over AudioLDM's VAE and HiFi-GAN vocoder (16 kHz, 64 mel bins).

The maths follows Tango's published inference (``models.py``, ``AudioDiffusion.inference``): T5 states of the
prompt (truncated to the tokenizer's ``model_max_length``) with a boolean mask as ``encoder_attention_mask``;
the unconditional branch is the empty text's states; guidance ``uncond + g * (cond - uncond)``; latents
``[B, 8, T / 4, 16]``; decode ``z / scale_factor`` -> VAE -> log-mel -> vocoder. The sampler and its noise
schedule come from ``scheduler/`` (Tango trains with Stable Diffusion 2.1's DDPM schedule, ``v_prediction``).

Folder tta accepts (safetensors, diffusers / transformers ``save_pretrained`` layouts)::

    model_index.json     {"_class_name": "TangoPipeline"}
    text_encoder/        transformers T5EncoderModel (FLAN-T5) config.json + model.safetensors
    tokenizer/           its T5 tokenizer
    unet/                diffusers UNet2DConditionModel (cross_attention_dim = T5 d_model)
    vae/                 diffusers AutoencoderKL (AudioLDM's VAE, as diffusers' AudioLDM folders store it)
    vocoder/             transformers SpeechT5HifiGan
    scheduler/           scheduler_config.json

Tango's own hub folders (``main_config.json``, ``pytorch_model_main.bin``, ``vae_config.json``, pickled ``.bin``
weights, the VAE in the original latent-diffusion layout) are read by :mod:`tta.families.tango_hub` into the same
components.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tta.families.common import (
    DIFFUSERS_WEIGHTS,
    OPTS,
    TRANSFORMERS_WEIGHTS,
    PackedTextEncoder,
    RowPacker,
    UNetAdapter,
    check_files,
    expect,
    load,
    load_tokenizer,
    pad_to,
    read_json,
    trim_masked,
)

CLASS_NAME = "TangoPipeline"
MAX_T5_TOKENS = 512
COMPONENTS = {
    "text_encoder": TRANSFORMERS_WEIGHTS,
    "unet": DIFFUSERS_WEIGHTS,
    "vae": DIFFUSERS_WEIGHTS,
    "vocoder": TRANSFORMERS_WEIGHTS,
}


class TangoTextEncoder(PackedTextEncoder):
    """Prompt -> packed row [1, L * D_t5 + L]: its T5 states padded to the tokenizer's length, and their mask."""

    def __init__(self, t5, tokenizer):
        super().__init__()
        self.t5, self.tokenizer = t5, tokenizer
        limit = getattr(tokenizer, "model_max_length", MAX_T5_TOKENS) or MAX_T5_TOKENS
        self.length = int(min(limit, MAX_T5_TOKENS))
        self.packer = RowPacker(t5=(self.length, int(t5.config.d_model)), mask=(self.length,))

    def encode_one(self, text: str) -> torch.Tensor:
        tok = self.tokenizer([text], max_length=self.length, truncation=True, return_tensors="pt")
        mask = tok.attention_mask.to(self.device)
        states = self.t5(input_ids=tok.input_ids.to(self.device), attention_mask=mask)[0]
        return self.packer.pack(t5=pad_to(states, self.length), mask=pad_to(mask.float(), self.length))


class TangoUNet(UNetAdapter):
    """``UNet2DConditionModel`` cross-attending to the T5 states of packed rows, masked."""

    def __init__(self, unet: torch.nn.Module, packer: RowPacker):
        super().__init__(unet)
        self.packer = packer

    def call(self, sample: torch.Tensor, timestep, rows: torch.Tensor) -> torch.Tensor:
        parts = self.packer.unpack(rows)
        states, mask = trim_masked(parts["t5"], parts["mask"])
        return self.unet(
            sample, timestep, encoder_hidden_states=states, encoder_attention_mask=mask, return_dict=False
        )[0]


def load_folder(folder: Path):
    """The :class:`~tta.loading.Components` of a Tango folder (CPU, eval mode, no network)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import SpeechT5HifiGan, T5EncoderModel

    from tta.loading import Components

    check_files(folder, COMPONENTS, tokenizers=("tokenizer",))
    scheduler = read_json(folder / "scheduler" / "scheduler_config.json")
    t5 = load(folder / "text_encoder", T5EncoderModel.from_pretrained, str(folder / "text_encoder"), **OPTS)
    unet = load(folder / "unet", UNet2DConditionModel.from_pretrained, str(folder / "unet"), **OPTS)
    expect(
        unet.config.cross_attention_dim == t5.config.d_model, folder / "unet" / "config.json",
        f"cross_attention_dim {unet.config.cross_attention_dim} does not match the T5's d_model "
        f"{t5.config.d_model} (text_encoder/config.json)",
    )  # fmt: skip
    vae = load(folder / "vae", AutoencoderKL.from_pretrained, str(folder / "vae"), **OPTS)
    vocoder = load(folder / "vocoder", SpeechT5HifiGan.from_pretrained, str(folder / "vocoder"), **OPTS)
    encoder = TangoTextEncoder(t5, load_tokenizer(folder / "tokenizer"))
    adapter = TangoUNet(unet, encoder.packer)
    for module in (adapter, vae, vocoder, encoder):
        module.eval()
    return Components(adapter, vae, vocoder, encoder, scheduler, CLASS_NAME, {}, None)
