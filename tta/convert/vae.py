"""AudioLDM's mel VAE (``variational_autoencoder``, latent-diffusion's ``Encoder``/``Decoder``) -> diffusers
``AutoencoderKL`` config and weights.

Original layout (keys under ``first_stage_model.``, the HiFi-GAN under ``first_stage_model.vocoder.`` is
not part of it): ``encoder.down.i.block.j`` / ``.downsample.conv``, ``{en,de}coder.mid.{block_1,attn_1,
block_2}``, ``decoder.up.i.block.j`` / ``.upsample.conv`` (``up`` indexed from the deepest level *last*),
``norm_out``, ``conv_out``, ``quant_conv``, ``post_quant_conv``. The mid attention's 1x1 convolutions become
diffusers' linear ``to_q``/``to_k``/``to_v``/``to_out.0``.
"""

from __future__ import annotations

import re
from typing import Any

from diffusers import AutoencoderKL

from tta.convert.common import StateDict, load_converted, require
from tta.errors import ModelLoadError

_RESNET_NAMES = {"nin_shortcut": "conv_shortcut"}  # norm1, conv1, norm2, conv2 keep their names
_ATTN_NAMES = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def _count(state_dict: StateDict, pattern: str) -> int:
    found = {m.group(1) for k in state_dict if (m := re.match(pattern, k))}
    return len(found)


def vae_config_from_state_dict(state_dict: StateDict, scaling_factor: float) -> dict[str, Any]:
    """Infer the ``AutoencoderKL`` arguments from an original VAE state dict (``first_stage_model.`` removed)."""
    conv_in = require(state_dict, "encoder.conv_in.weight", "AudioLDM VAE encoder")
    levels = _count(state_dict, r"encoder\.down\.(\d+)\.")
    per_level = _count(state_dict, r"encoder\.down\.0\.block\.(\d+)\.")
    if any(".attn." in k for k in state_dict if k.startswith(("encoder.down.", "decoder.up."))):
        raise ModelLoadError("the VAE has attention inside its levels (attn_resolutions): not supported")
    for i in range(levels - 1):
        if require(state_dict, f"encoder.down.{i}.downsample.conv.weight", "VAE downsampler").shape[-1] != 3:
            raise ModelLoadError("the VAE down-samples time by 4 (DownsampleTimeStride4): not supported")
    z_channels = require(state_dict, "post_quant_conv.weight", "VAE post_quant_conv").shape[0]
    embed_dim = state_dict["post_quant_conv.weight"].shape[1]
    if z_channels != embed_dim or state_dict["encoder.conv_out.weight"].shape[0] != 2 * z_channels:
        raise ModelLoadError(f"the VAE's z_channels ({z_channels}) and embed_dim ({embed_dim}) differ: not supported")
    return {
        "in_channels": conv_in.shape[1],
        "out_channels": require(state_dict, "decoder.conv_out.weight", "VAE decoder").shape[0],
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "block_out_channels": [state_dict[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] for i in range(levels)],
        "layers_per_block": per_level,
        "latent_channels": z_channels,
        "norm_num_groups": 32,  # latent-diffusion's Normalize() is GroupNorm(32, eps=1e-6), as diffusers'
        "sample_size": 512,
        "scaling_factor": float(scaling_factor),
    }


def _rename(rest: str, names: dict[str, str]) -> str:
    head, _, tail = rest.partition(".")
    return f"{names.get(head, head)}.{tail}"


def convert_vae_state_dict(state_dict: StateDict, config: dict[str, Any]) -> StateDict:
    """Rename an original VAE state dict (``first_stage_model.`` removed; no ``vocoder.``) to diffusers names."""
    levels = len(config["block_out_channels"])
    converted: StateDict = {}
    for key, value in state_dict.items():
        part, _, rest = key.partition(".")
        if part in ("quant_conv", "post_quant_conv"):
            converted[key] = value
            continue
        if part not in ("encoder", "decoder"):
            raise ModelLoadError(f"unexpected VAE parameter {key!r}")
        if m := re.match(r"(down|up)\.(\d+)\.block\.(\d+)\.(.+)$", rest):
            level = int(m.group(2)) if m.group(1) == "down" else levels - 1 - int(m.group(2))
            new = f"{m.group(1)}_blocks.{level}.resnets.{m.group(3)}.{_rename(m.group(4), _RESNET_NAMES)}"
        elif m := re.match(r"(down|up)\.(\d+)\.(?:downsample|upsample)\.(.+)$", rest):
            level = int(m.group(2)) if m.group(1) == "down" else levels - 1 - int(m.group(2))
            new = f"{m.group(1)}_blocks.{level}.{m.group(1)}samplers.0.{m.group(3)}"
        elif m := re.match(r"mid\.block_(\d)\.(.+)$", rest):
            new = f"mid_block.resnets.{int(m.group(1)) - 1}.{_rename(m.group(2), _RESNET_NAMES)}"
        elif m := re.match(r"mid\.attn_1\.(.+)$", rest):
            new = f"mid_block.attentions.0.{_rename(m.group(1), _ATTN_NAMES)}"
            if value.ndim == 4:  # 1x1 conv -> linear
                value = value[:, :, 0, 0]
        elif m := re.match(r"(conv_in|conv_out|norm_out)\.(.+)$", rest):
            new = f"{'conv_norm_out' if m.group(1) == 'norm_out' else m.group(1)}.{m.group(2)}"
        else:
            raise ModelLoadError(f"unexpected VAE parameter {key!r}")
        converted[f"{part}.{new}"] = value
    return converted


def convert_vae(state_dict: StateDict, scaling_factor: float) -> AutoencoderKL:
    """An original VAE state dict (``first_stage_model.`` removed, no vocoder) -> loaded ``AutoencoderKL``."""
    config = vae_config_from_state_dict(state_dict, scaling_factor)
    vae = AutoencoderKL(**config)
    return load_converted(vae, convert_vae_state_dict(state_dict, config), "VAE").eval()
