"""AudioLDM's ``openaimodel.UNetModel`` state dict -> diffusers ``UNet2DConditionModel`` config and weights.

The original layout (keys under ``model.diffusion_model.``):

* ``time_embed.{0,2}``, ``film_emb`` (the CLAP embedding's FiLM projection), ``input_blocks.0.0`` (conv in),
  ``out.{0,2}`` (norm, conv out);
* ``input_blocks.i``: per level, ``num_res_blocks`` blocks of ``[ResBlock, SpatialTransformer?]`` then one
  ``[Downsample]`` (``.0.op``) except after the last level;
* ``middle_block.{0,1,2}``: ResBlock, SpatialTransformer, ResBlock;
* ``output_blocks.k``: per level from the deepest, ``num_res_blocks + 1`` blocks of
  ``[ResBlock, SpatialTransformer?, Upsample?]`` (``.conv``), the upsampler in the last block of each level but
  the shallowest.

Inside a SpatialTransformer the names already match diffusers' ``Transformer2DModel``; ResBlocks are renamed.
What the weights do not record (heads) comes from ``num_head_channels``, as in the original config.
"""

from __future__ import annotations

import re
from typing import Any

from diffusers import UNet2DConditionModel

from tta.convert.common import StateDict, load_converted, require
from tta.errors import ModelLoadError

# openaimodel ResBlock -> diffusers ResnetBlock2D
_RESBLOCK_NAMES = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}


def default_num_head_channels(model_channels: int) -> int:
    """Channels per attention head of the released AudioLDM models (``audioldm/utils.py``'s default config):
    64 for AudioLDM-L (``model_channels`` 256), 32 for AudioLDM-S and -M."""
    return 64 if model_channels == 256 else 32


def _blocks(state_dict: StateDict, prefix: str) -> dict[int, set[str]]:
    """``{block index: names of its sub-modules' parameters}`` for ``input_blocks``/``output_blocks``."""
    blocks: dict[int, set[str]] = {}
    for key in state_dict:
        match = re.match(rf"{prefix}\.(\d+)\.(.+)$", key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(match.group(2))
    return blocks


def _sub_kind(names: set[str], sub: int) -> str | None:
    """What sub-module ``sub`` of a block is: "res", "attn", "down", "up", or None when absent."""
    mine = {n[len(f"{sub}.") :] for n in names if n.startswith(f"{sub}.")}
    if not mine:
        return None
    if "in_layers.2.weight" in mine:
        return "res"
    if "proj_in.weight" in mine:
        return "attn"
    if "op.weight" in mine:
        return "down"
    if "conv.weight" in mine:
        return "up"
    raise ModelLoadError(f"unrecognised UNet sub-module with parameters {sorted(mine)[:4]}")


def _input_layout(state_dict: StateDict) -> list[tuple[int, int, str]]:
    """``(block index, level, kind)`` for every input block after the first: kind is "res" or "down"."""
    blocks = _blocks(state_dict, "input_blocks")
    layout, level = [], 0
    for index in sorted(i for i in blocks if i > 0):
        kind = _sub_kind(blocks[index], 0)
        if kind not in ("res", "down"):
            raise ModelLoadError(f"input_blocks.{index} is neither a ResBlock nor a Downsample (resblock_updown?)")
        layout.append((index, level, kind))
        level += kind == "down"
    return layout


def unet_config_from_state_dict(state_dict: StateDict, num_head_channels: int | None = None) -> dict[str, Any]:
    """Infer the ``UNet2DConditionModel`` arguments from an original UNet state dict (prefix removed).

    Args:
        state_dict: the ``model.diffusion_model.*`` entries with that prefix removed.
        num_head_channels: channels per attention head (the original's ``num_head_channels``); None picks
            the released models' value (:func:`default_num_head_channels`).
    """
    conv_in = require(state_dict, "input_blocks.0.0.weight", "AudioLDM UNet")
    model_channels = conv_in.shape[0]
    head_channels = num_head_channels or default_num_head_channels(model_channels)
    blocks = _blocks(state_dict, "input_blocks")
    levels: list[dict[str, Any]] = []
    for index, level, kind in _input_layout(state_dict):
        if kind == "down":
            continue
        if level == len(levels):
            levels.append({"res": 0, "attn": False, "channels": 0, "depth": 0, "context": None})
        info = levels[level]
        info["res"] += 1
        info["channels"] = state_dict[f"input_blocks.{index}.0.out_layers.3.weight"].shape[0]
        if _sub_kind(blocks[index], 1) == "attn":
            info["attn"] = True
            prefix = f"input_blocks.{index}.1.transformer_blocks."
            info["depth"] = len({k[len(prefix) :].split(".")[0] for k in state_dict if k.startswith(prefix)})
            info["context"] = state_dict[f"{prefix}0.attn2.to_k.weight"].shape[1]
    if not levels or len({info["res"] for info in levels}) != 1:
        raise ModelLoadError("the UNet's levels hold different numbers of ResBlocks: not an AudioLDM UNet")
    channels = [info["channels"] for info in levels]
    time_dim = require(state_dict, "time_embed.0.weight", "UNet time embedding").shape[0]
    emb_in = state_dict["input_blocks.1.0.emb_layers.1.weight"]
    first_out = state_dict["input_blocks.1.0.out_layers.3.weight"].shape[0]
    mid_proj = "middle_block.1.proj_in.weight"
    config: dict[str, Any] = {
        "sample_size": None,
        "in_channels": conv_in.shape[1],
        "out_channels": require(state_dict, "out.2.weight", "UNet output conv").shape[0],
        "block_out_channels": channels,
        "layers_per_block": levels[0]["res"],
        "down_block_types": ["CrossAttnDownBlock2D" if i["attn"] else "DownBlock2D" for i in levels],
        "up_block_types": ["CrossAttnUpBlock2D" if i["attn"] else "UpBlock2D" for i in reversed(levels)],
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        # Without a text context, the original's attn2 attends to its own input: key/value width = channels.
        "cross_attention_dim": [i["context"] or i["channels"] for i in levels],
        "attention_head_dim": [max(1, c // head_channels) for c in channels],  # diffusers' legacy name: heads
        "transformer_layers_per_block": [max(1, i["depth"]) for i in levels],
        "use_linear_projection": require(state_dict, mid_proj, "UNet middle attention").ndim == 2,
        "norm_num_groups": 32,  # openaimodel's normalization() is GroupNorm32(32, ch)
        "norm_eps": 1e-5,
        "resnet_time_scale_shift": "scale_shift" if emb_in.shape[0] == 2 * first_out else "default",
    }
    if time_dim != 4 * model_channels:
        config["time_embedding_dim"] = time_dim
    if "film_emb.weight" in state_dict:
        config["class_embed_type"] = "simple_projection"
        config["projection_class_embeddings_input_dim"] = state_dict["film_emb.weight"].shape[1]
        config["class_embeddings_concat"] = emb_in.shape[1] == 2 * time_dim
    return config


def _module_map(state_dict: StateDict, layers_per_block: int) -> list[tuple[str, str, str]]:
    """``(original prefix, diffusers prefix, kind)`` for every sub-module of the UNet body."""
    mapping = [
        ("time_embed.0", "time_embedding.linear_1", "copy"),
        ("time_embed.2", "time_embedding.linear_2", "copy"),
        ("film_emb", "class_embedding", "copy"),
        ("input_blocks.0.0", "conv_in", "copy"),
        ("out.0", "conv_norm_out", "copy"),
        ("out.2", "conv_out", "copy"),
        ("middle_block.0", "mid_block.resnets.0", "res"),
        ("middle_block.1", "mid_block.attentions.0", "copy"),
        ("middle_block.2", "mid_block.resnets.1", "res"),
    ]
    blocks = _blocks(state_dict, "input_blocks")
    position: dict[int, int] = {}
    for index, level, kind in _input_layout(state_dict):
        if kind == "down":
            mapping.append((f"input_blocks.{index}.0.op", f"down_blocks.{level}.downsamplers.0.conv", "copy"))
            continue
        j = position.get(level, 0)
        position[level] = j + 1
        mapping.append((f"input_blocks.{index}.0", f"down_blocks.{level}.resnets.{j}", "res"))
        if _sub_kind(blocks[index], 1) == "attn":
            mapping.append((f"input_blocks.{index}.1", f"down_blocks.{level}.attentions.{j}", "copy"))
    outputs = _blocks(state_dict, "output_blocks")
    for index in sorted(outputs):
        up, j = divmod(index, layers_per_block + 1)
        for sub in range(3):
            kind = _sub_kind(outputs[index], sub)
            old = f"output_blocks.{index}.{sub}"
            if kind == "res":
                mapping.append((old, f"up_blocks.{up}.resnets.{j}", "res"))
            elif kind == "attn":
                mapping.append((old, f"up_blocks.{up}.attentions.{j}", "copy"))
            elif kind == "up":
                mapping.append((f"{old}.conv", f"up_blocks.{up}.upsamplers.0.conv", "copy"))
    return mapping


def _rename_resblock(rest: str) -> str:
    for old, new in _RESBLOCK_NAMES.items():
        if rest.startswith(old + "."):
            return new + rest[len(old) :]
    raise ModelLoadError(f"unexpected ResBlock parameter {rest!r}")


def convert_unet_state_dict(state_dict: StateDict, config: dict[str, Any]) -> StateDict:
    """Rename an original UNet state dict (prefix removed) to ``UNet2DConditionModel`` names."""
    mapping = _module_map(state_dict, config["layers_per_block"])
    converted: StateDict = {}
    for key, value in state_dict.items():
        for old, new, kind in mapping:
            if key.startswith(old + "."):
                rest = key[len(old) + 1 :]
                converted[f"{new}.{_rename_resblock(rest) if kind == 'res' else rest}"] = value
                break
        else:
            raise ModelLoadError(f"unexpected UNet parameter {key!r}")
    return converted


def convert_unet(state_dict: StateDict, num_head_channels: int | None = None) -> UNet2DConditionModel:
    """An original UNet state dict (prefix removed) -> a loaded ``UNet2DConditionModel`` in eval mode."""
    config = unet_config_from_state_dict(state_dict, num_head_channels)
    unet = UNet2DConditionModel(**config)
    return load_converted(unet, convert_unet_state_dict(state_dict, config), "UNet").eval()
