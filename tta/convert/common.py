"""Helpers shared by the per-component converters: prefix selection and loading with full checks."""

from __future__ import annotations

import torch
from torch import nn

from tta.errors import ModelLoadError

StateDict = dict[str, torch.Tensor]


def take_prefix(state_dict: StateDict, prefix: str) -> StateDict:
    """The entries of ``state_dict`` under ``prefix`` (e.g. ``"model.diffusion_model."``), prefix removed."""
    return {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}


def require(state_dict: StateDict, key: str, what: str) -> torch.Tensor:
    """``state_dict[key]``, or a :class:`ModelLoadError` saying the checkpoint lacks ``what``."""
    if key not in state_dict:
        raise ModelLoadError(f"the checkpoint has no {what} (missing key {key!r})")
    return state_dict[key]


def load_converted(model: nn.Module, state_dict: StateDict, what: str) -> nn.Module:
    """Load a converted state dict into ``model``, requiring every parameter and nothing extra.

    Non-persistent or derivable buffers the target model registers (``position_ids``...) may be absent.
    Raises :class:`ModelLoadError` listing (a few of) the missing, unexpected or mis-shaped keys.
    """
    expected = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    missing = sorted(k for k in expected if k not in state_dict and k not in buffers)
    unexpected = sorted(k for k in state_dict if k not in expected)
    mis_shaped = sorted(
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    )
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise ModelLoadError(f"cannot convert the {what}: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=False)
    return model
