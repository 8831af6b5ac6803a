"""Retrieval conditioning (Re-AudioLDM, Yuan et al. 2024): the UNet also attends to the prompt's nearest sounds.

The top-k neighbours of a prompt in a :class:`~tta.retrieval.RetrievalIndex` each become one token: a projection of
the neighbour's CLAP audio embedding plus one of its latent summary (per VAE latent channel and mel bin, the mean
and spread over time: what the sound's spectrum looks like) plus one of its retrieval score, layer-normalised.
The tokens enter the UNet through the cross-attention of its transformer blocks (``encoder_hidden_states``), in
addition to the FiLM CLAP condition. Missing neighbours, dropped retrieval (classifier-free guidance) and
generation without an index use learned null tokens, so the model always generates.

:class:`RetrievalUNet` wraps a diffusers UNet and a :class:`RetrievalEncoder` behind the UNet's own call: its
``class_labels`` rows are the CLAP condition [R, D], optionally followed by the packed neighbour features
(:func:`pack_neighbours`). Rows of only D columns get the null tokens. Guidance, composition and mixing treat a
row as one condition, as they do for the plain UNet; nothing else needs to know about retrieval.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from tta.errors import InputError


class RetrievalEncoder(ModelMixin, ConfigMixin):
    """Neighbour features -> cross-attention tokens [B, K, token_dim].

    Args:
        embedding_dim: CLAP embedding size (D).
        latent_dim: size of a latent summary (L = 2 * latent channels * latent frequency bins).
        token_dim: the UNet's ``cross_attention_dim``.
        top_k: neighbours per condition (K), fixed per model.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, embedding_dim: int = 512, latent_dim: int = 256, token_dim: int = 256, top_k: int = 4):
        super().__init__()
        self.audio_proj = nn.Linear(embedding_dim, token_dim)
        self.latent_proj = nn.Linear(latent_dim, token_dim)
        self.score_proj = nn.Linear(1, token_dim)
        self.norm = nn.LayerNorm(token_dim)
        self.null = nn.Parameter(torch.randn(top_k, token_dim))

    @property
    def feature_dim(self) -> int:
        """Columns one neighbour takes in a packed row: audio embedding, latent summary, score, valid flag."""
        return self.config.embedding_dim + self.config.latent_dim + 2

    def null_tokens(self, batch: int, k: int | None = None) -> torch.Tensor:
        """[batch, k, token_dim] null tokens (k default ``top_k``; past it, the trained ones repeat)."""
        k = self.config.top_k if k is None else k
        null = self.norm(self.null)[torch.arange(k, device=self.null.device) % self.config.top_k]
        return null.unsqueeze(0).expand(batch, -1, -1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[B, K, feature_dim] neighbour features (see :func:`pack_neighbours`) -> tokens [B, K, token_dim]; a
        neighbour whose valid flag is 0 gets its null token."""
        d, ell = self.config.embedding_dim, self.config.latent_dim
        audio, latent = features[..., :d], features[..., d : d + ell]
        score, valid = features[..., d + ell : d + ell + 1], features[..., d + ell + 1 :] > 0.5
        tokens = self.norm(self.audio_proj(audio) + self.latent_proj(latent) + self.score_proj(score))
        return torch.where(valid, tokens, self.null_tokens(features.shape[0], features.shape[1]).to(tokens.dtype))


def pack_neighbours(
    audio: torch.Tensor, latent: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Neighbour features [B, K, D], [B, K, L], [B, K], [B, K] (bool) -> rows [B, K * (D + L + 2)] (invalid
    neighbours zeroed), to follow the CLAP condition in a :class:`RetrievalUNet`'s ``class_labels``."""
    scores = torch.where(valid, scores, torch.zeros_like(scores))
    feats = torch.cat([audio, latent, scores[..., None], valid[..., None].to(audio.dtype)], dim=-1)
    feats = feats * valid[..., None].to(feats.dtype)
    return feats.flatten(1)


class RetrievalUNet(nn.Module):
    """A diffusers ``UNet2DConditionModel`` (int ``cross_attention_dim`` = the encoder's ``token_dim``) and its
    :class:`RetrievalEncoder`, called like the UNet (see the module docstring)."""

    def __init__(self, unet: nn.Module, encoder: RetrievalEncoder):
        super().__init__()
        if unet.config.cross_attention_dim != encoder.config.token_dim:
            raise InputError(
                f"the UNet's cross_attention_dim {unet.config.cross_attention_dim} must equal the retrieval "
                f"encoder's token_dim {encoder.config.token_dim}"
            )
        self.unet = unet
        self.encoder = encoder

    @property
    def config(self):
        return self.unet.config

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def condition_dim(self) -> int:
        return int(self.unet.config.projection_class_embeddings_input_dim)

    @property
    def top_k(self) -> int:
        return int(self.encoder.config.top_k)

    def tokens(self, rows: torch.Tensor) -> torch.Tensor:
        """Condition rows [R, D + k * F] -> cross-attention tokens [R, k, token_dim]; rows of only the CLAP
        condition get ``top_k`` null tokens."""
        extra = rows.shape[1] - self.condition_dim
        if extra == 0:
            return self.encoder.null_tokens(rows.shape[0]).to(rows.dtype)
        if extra < 0 or extra % self.encoder.feature_dim:
            raise InputError(
                f"condition rows must have {self.condition_dim} + k * {self.encoder.feature_dim} columns, got "
                f"{rows.shape[1]}"
            )
        feats = rows[:, self.condition_dim :].reshape(rows.shape[0], -1, self.encoder.feature_dim)
        return self.encoder(feats)

    def forward(self, sample, timestep, encoder_hidden_states=None, class_labels=None, return_dict: bool = True):
        if encoder_hidden_states is not None:
            raise InputError("a RetrievalUNet makes its own encoder_hidden_states from the condition rows")
        tokens = self.tokens(class_labels)
        out = self.unet(
            sample, timestep, encoder_hidden_states=tokens, class_labels=class_labels[:, : self.condition_dim]
        )
        return out if return_dict else SimpleNamespace(sample=out.sample)


def adapt_unet_state(state: dict[str, torch.Tensor], unet: nn.Module) -> dict[str, torch.Tensor]:
    """A plain UNet's weights for a retrieval UNet of the same layout: every tensor is kept except the
    cross-attention keys and values (``attn2.to_k`` / ``to_v``), which take new inputs (the tokens). The new
    values start at zero, so each ``attn2`` begins by adding only its output bias: the UNet starts close to the
    plain one and learns to use the tokens."""
    own = unet.state_dict()
    out = {}
    for name, tensor in own.items():
        if ".attn2.to_k." in name or ".attn2.to_v." in name:
            out[name] = torch.zeros_like(tensor) if ".attn2.to_v." in name else tensor
        elif name in state and state[name].shape == tensor.shape:
            out[name] = state[name]
        else:
            raise InputError(f"cannot warm-start {name}: the plain UNet has no tensor of shape {tuple(tensor.shape)}")
    return out
