"""Exponential moving average of a model's floating-point parameters and buffers."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class EMA:
    """Keeps ``shadow = decay * shadow + (1 - decay) * param`` for every trainable float tensor of a model.

    ``decay`` warms up as ``min(decay, (1 + n) / (10 + n))`` over the first updates so early averages are
    not dominated by the random initialisation. Buffers (BatchNorm statistics) are not averaged: swapping
    the average in keeps the live buffers.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: p.detach().clone().float() for k, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for k, p in model.named_parameters():
            if k in self.shadow:
                self.shadow[k].lerp_(p.detach().float(), 1 - d)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**self.shadow, "__num_updates__": torch.tensor(self.num_updates)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the averages; every tracked tensor must be in ``state`` (a silent partial load would
        quietly restart the average)."""
        state = dict(state)
        self.num_updates = int(state.pop("__num_updates__", torch.tensor(0)))
        missing = [k for k in self.shadow if k not in state]
        if missing:
            from tta.errors import ModelLoadError

            raise ModelLoadError(
                f"EMA state lacks {len(missing)} of the model's {len(self.shadow)} tensors (e.g. {missing[0]!r}): "
                "it was saved for a different model"
            )
        for k, v in state.items():
            if k in self.shadow:
                self.shadow[k].copy_(v)

    @contextmanager
    def swapped_into(self, model: nn.Module):
        """Temporarily load the averaged weights into ``model`` (e.g. for evaluation or export)."""
        backup = {k: p.detach().clone() for k, p in model.named_parameters() if k in self.shadow}
        params = dict(model.named_parameters())
        with torch.no_grad():
            for k, v in self.shadow.items():
                params[k].copy_(v)
        try:
            yield model
        finally:
            with torch.no_grad():
                for k, v in backup.items():
                    params[k].copy_(v)
