"""AudioLDM's CLAP text branch (RoBERTa + 2-layer projection) -> transformers ``ClapTextModelWithProjection``.

In the checkpoint the CLAP model sits under ``cond_stage_model.model.``: ``text_branch.*`` is a transformers
``RobertaModel`` (the same sub-module names as ``ClapTextModel``), ``text_projection.{0,2}`` the
``Linear -> ReLU -> Linear`` projection (``ClapProjectionLayer.linear1/linear2``). The audio branch
(HTSAT), ``text_transform``/``audio_transform`` (training-only MLPs) and the logit scales are not part of
the text tower. The text embedding AudioLDM conditions on is ``normalize(text_projection(pooler_output))``.
"""

from __future__ import annotations

from typing import Any

from transformers import ClapTextConfig, ClapTextModelWithProjection

from tta.convert.common import StateDict, load_converted, require
from tta.errors import ModelLoadError

_SKIPPED_BUFFERS = ("text_model.embeddings.position_ids", "text_model.embeddings.token_type_ids")


def clap_text_config_from_state_dict(state_dict: StateDict, head_dim: int = 64) -> dict[str, Any]:
    """Infer ``ClapTextConfig`` fields from the CLAP state dict (``cond_stage_model.model.`` removed).

    Attention heads are not recorded in the weights: ``hidden_size // head_dim`` (RoBERTa-base: 768 / 64 = 12).
    """
    words = require(state_dict, "text_branch.embeddings.word_embeddings.weight", "CLAP text branch")
    hidden = words.shape[1]
    layers = len({k.split(".")[3] for k in state_dict if k.startswith("text_branch.encoder.layer.")})
    if hidden % head_dim:
        raise ModelLoadError(f"CLAP text width {hidden} is not a multiple of the head size {head_dim}")
    return {
        "vocab_size": words.shape[0],
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": hidden // head_dim,
        "intermediate_size": state_dict["text_branch.encoder.layer.0.intermediate.dense.weight"].shape[0],
        "max_position_embeddings": state_dict["text_branch.embeddings.position_embeddings.weight"].shape[0],
        "type_vocab_size": state_dict["text_branch.embeddings.token_type_embeddings.weight"].shape[0],
        "layer_norm_eps": 1e-5,  # RoBERTa's (ClapTextConfig's default is BERT's 1e-12)
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "projection_dim": require(state_dict, "text_projection.2.weight", "CLAP text projection").shape[0],
        "projection_hidden_act": "relu",
    }


def convert_clap_text_state_dict(state_dict: StateDict) -> StateDict:
    """Pick and rename the text tower's weights to ``ClapTextModelWithProjection`` names."""
    converted: StateDict = {}
    for key, value in state_dict.items():
        if key.startswith("text_branch."):
            new = "text_model." + key[len("text_branch.") :]
            if new not in _SKIPPED_BUFFERS:
                converted[new] = value
        elif key.startswith("text_projection."):
            index, _, rest = key[len("text_projection.") :].partition(".")
            converted[f"text_projection.linear{1 if index == '0' else 2}.{rest}"] = value
    return converted


def convert_clap_text(state_dict: StateDict, head_dim: int = 64) -> ClapTextModelWithProjection:
    """The CLAP state dict (``cond_stage_model.model.`` removed) -> a loaded text tower in eval mode."""
    config = ClapTextConfig(**clap_text_config_from_state_dict(state_dict, head_dim))
    model = ClapTextModelWithProjection(config)
    return load_converted(model, convert_clap_text_state_dict(state_dict), "CLAP text branch").eval()
