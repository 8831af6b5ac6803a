"""Exponential moving average of a model's trainable weights: diffusers' ``EMAModel``, with the checks tta needs.

``EMAModel(decay=d, use_ema_warmup=False)`` keeps ``shadow = decay_n * shadow + (1 - decay_n) * param`` with
``decay_n = min(d, n / (n + 9))`` at its ``n``-th update, and ``decay_1 = 0`` (the first update copies the weights).
tta's own EMA before used ``min(d, (n + 1) / (n + 10))`` from its first update on (keeping 2/11 of the initial
weights in): the same warm-up, one update later. Both reach the cap after ~9000 updates at decay 0.999, and what
the warm-up left different then fades by the decay at every update. ``EMAModel`` is used as it is (no
``update_after_step=-1`` to reproduce the old numbers): no shipped model depends on them.
Only parameters with ``requires_grad`` are averaged (buffers such as BatchNorm statistics stay live).
"""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn

from tta.errors import ModelLoadError


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def build_ema(module: nn.Module, decay: float):
    """diffusers ``EMAModel`` over ``module``'s trainable parameters (``decay`` as the cap of the warm-up)."""
    from diffusers.training_utils import EMAModel

    return EMAModel(trainable(module), decay=decay, use_ema_warmup=False)


def check_ema_fits(ema, module: nn.Module, source: str) -> None:
    """Raise :class:`ModelLoadError` unless the loaded EMA holds one tensor of the right shape per trainable
    parameter of ``module`` (a silent partial load would quietly restart or misalign the average)."""
    params = trainable(module)
    shapes = [tuple(s.shape) for s in ema.shadow_params]
    if shapes != [tuple(p.shape) for p in params]:
        raise ModelLoadError(
            f"the EMA state in {source} holds {len(shapes)} tensors that do not match the model's {len(params)} "
            "trainable parameters: it was saved for a different model"
        )
    ema.to(params[0].device if params else "cpu")


@contextmanager
def ema_weights(ema, module: nn.Module):
    """Temporarily load the averaged weights into ``module`` (evaluation, export); no-op when ``ema`` is None."""
    if ema is None:
        yield module
        return
    params = trainable(module)
    ema.store(params)
    ema.copy_to(params)
    try:
        yield module
    finally:
        ema.restore(params)
