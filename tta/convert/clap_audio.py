"""AudioLDM's CLAP audio branch (HTSAT, unfused) -> the audio half of a transformers ``ClapModel``.

Original keys under ``cond_stage_model.model.``: ``audio_branch.*`` (``HTSAT_Swin_Transformer``: ``bn0``,
``patch_embed``, ``layers.i.blocks.j.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``,
``layers.i.downsample``, ``norm``), ``audio_projection.{0,2}`` and ``logit_scale_{a,t}``. transformers keeps
the same Swin layout with BERT-style names and split query/key/value. Not converted: the torchlibrosa
front-end's fixed STFT/mel weights (``ClapFeatureExtractor`` computes the log-mel outside the model), the
shifted-window ``attn_mask`` buffers (recomputed), and the AudioSet head (``tscam_conv``, ``head``), which the
CLAP embedding does not use.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from tta.convert.clap_text import clap_text_config_from_state_dict, convert_clap_text_state_dict
from tta.convert.common import StateDict, load_converted, require
from tta.errors import ModelLoadError

_BLOCK_NAMES = {
    "norm1": "layernorm_before",
    "attn.relative_position_bias_table": "attention.self.relative_position_bias_table",
    "attn.relative_position_index": "attention.self.relative_position_index",
    "attn.proj": "attention.output.dense",
    "norm2": "layernorm_after",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_IGNORED = re.compile(r"(spectrogram_extractor|logmel_extractor|tscam_conv|head)\.|.*\.attn_mask$")


def has_audio_branch(state_dict: StateDict) -> bool:
    """Whether the CLAP state dict (``cond_stage_model.model.`` removed) holds an HTSAT audio branch."""
    return "audio_branch.patch_embed.proj.weight" in state_dict and "audio_projection.0.weight" in state_dict


def clap_audio_config_from_state_dict(state_dict: StateDict) -> dict[str, Any]:
    """Infer ``ClapAudioConfig`` fields from the CLAP state dict (``cond_stage_model.model.`` removed).

    Heads and window size come from the relative position tables; the spectrogram size (256), the patch
    stride (= patch size) and the 64 mel bins are HTSAT-tiny's as configured in AudioLDM (not in the weights).
    """
    if any(k.startswith(("audio_branch.fusion_model.", "audio_branch.mel_conv")) for k in state_dict):
        raise ModelLoadError("the CLAP audio branch is a fusion model: not supported")
    proj = require(state_dict, "audio_branch.patch_embed.proj.weight", "CLAP audio branch")
    depths = []
    while any(k.startswith(f"audio_branch.layers.{len(depths)}.") for k in state_dict):
        i = len(depths)
        depths.append(len({k.split(".")[4] for k in state_dict if k.startswith(f"audio_branch.layers.{i}.blocks.")}))
    tables = [
        state_dict[f"audio_branch.layers.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(len(depths))
    ]
    window = (int(round(tables[0].shape[0] ** 0.5)) + 1) // 2
    hidden = state_dict["audio_branch.norm.weight"].shape[0]
    fc1 = state_dict["audio_branch.layers.0.blocks.0.mlp.fc1.weight"]
    return {
        "window_size": window,
        "num_mel_bins": state_dict["audio_branch.bn0.weight"].shape[0],
        "spec_size": 256,
        "patch_size": proj.shape[-1],
        "patch_stride": [proj.shape[-2], proj.shape[-1]],
        "patch_embed_input_channels": proj.shape[1],
        "patch_embeds_hidden_size": proj.shape[0],
        "hidden_size": hidden,
        "depths": depths,
        "num_attention_heads": [t.shape[1] for t in tables],
        "mlp_ratio": fc1.shape[0] / fc1.shape[1],
        "num_classes": state_dict["audio_branch.head.weight"].shape[0]
        if "audio_branch.head.weight" in state_dict
        else 527,
        "enable_fusion": False,
        "enable_patch_layer_norm": "audio_branch.patch_embed.norm.weight" in state_dict,
        "projection_dim": require(state_dict, "audio_projection.2.weight", "CLAP audio projection").shape[0],
        "projection_hidden_act": "relu",
    }


def convert_clap_audio_state_dict(state_dict: StateDict) -> StateDict:
    """Pick and rename the audio tower (``audio_model.audio_encoder.*``, ``audio_projection.*``) and logit scales."""
    converted: StateDict = {}
    for key, value in state_dict.items():
        if key in ("logit_scale_a", "logit_scale_t"):
            converted[key] = value.reshape(())
        elif key.startswith("audio_projection."):
            index, _, rest = key[len("audio_projection.") :].partition(".")
            converted[f"audio_projection.linear{1 if index == '0' else 2}.{rest}"] = value
        elif key.startswith("audio_branch."):
            rest = key[len("audio_branch.") :]
            if _IGNORED.match(rest):
                continue
            converted.update(_rename_audio(rest, value))
    return converted


def _rename_audio(rest: str, value: torch.Tensor) -> StateDict:
    prefix = "audio_model.audio_encoder."
    if rest.startswith("bn0."):
        return {prefix + "batch_norm." + rest[len("bn0.") :]: value}
    m = re.match(r"(layers\.\d+\.blocks\.\d+)\.(.+)$", rest)
    if not m:
        return {prefix + rest: value}  # patch_embed.*, layers.i.downsample.*, norm.*
    block, name = m.groups()
    if name.startswith("attn.qkv."):
        kind = name[len("attn.qkv.") :]
        query, key, val = value.chunk(3, dim=0)
        return {
            f"{prefix}{block}.attention.self.{n}.{kind}": t
            for n, t in zip(("query", "key", "value"), (query, key, val))
        }
    for old, new in _BLOCK_NAMES.items():
        if name.startswith(old):
            return {f"{prefix}{block}.{new}{name[len(old) :]}": value}
    raise ModelLoadError(f"unexpected CLAP audio parameter audio_branch.{rest!r}")


def convert_clap_model(state_dict: StateDict, head_dim: int = 64):
    """The CLAP state dict (``cond_stage_model.model.`` removed) -> a loaded transformers ``ClapModel`` (eval)."""
    from transformers import ClapConfig, ClapModel

    text = clap_text_config_from_state_dict(state_dict, head_dim)
    audio = clap_audio_config_from_state_dict(state_dict)
    if text["projection_dim"] != audio["projection_dim"]:
        raise ModelLoadError(
            f"CLAP text and audio projections differ ({text['projection_dim']} vs {audio['projection_dim']})"
        )
    config = ClapConfig(text_config=text, audio_config=audio, projection_dim=text["projection_dim"])
    converted = {**convert_clap_text_state_dict(state_dict), **convert_clap_audio_state_dict(state_dict)}
    return load_converted(ClapModel(config), converted, "CLAP model").eval()
