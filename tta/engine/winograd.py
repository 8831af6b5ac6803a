"""Winograd 3x3 convolutions for the VAE decoder, by NNPACK (in torch's CPU wheels): the same maths with fewer
float32 multiplications (#28).

Winograd's F(6x6, 3x3) computes a 3x3 convolution with about a fifth of the direct method's multiplications,
exact up to rounding. oneDNN (torch's default) already runs the direct convolutions at this CPU's float32 peak
(``benchmarks/bench_roofline.py``), so fewer multiplications is the one way left to a faster float32 decoder.
``benchmarks/bench_winograd.py`` times every layer both ways: NNPACK wins on wide layers (128 channels or more in
and out, over 1024 pixels or more), by 1.3-2.5x on AudioLDM-S's VAE decoder, and loses on narrow ones and on
everything in the UNet (small feature maps), so only the decoder's wide layers are switched.

A switched layer is an :class:`WinogradConv2d`: the same ``nn.Conv2d`` (parameters, state-dict keys), whose
no-grad float32 CPU calls on large enough inputs go through NNPACK; anything else (training, bfloat16, another
device) runs the ordinary convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIN_CHANNELS = 128  # in and out: narrower layers are slower in NNPACK (bench_winograd.py, shipped VAE: 0.6-0.9x)
MIN_PIXELS = 1024  # of the layer's input feature map
_warned: list[str] = []


def nnpack_available() -> bool:
    """Whether torch has NNPACK on this CPU (the check also initialises NNPACK, which its first call needs)."""
    return bool(torch.backends.nnpack.is_available())


def eligible(module: torch.nn.Module, min_channels: int | None = None) -> bool:
    """A plain 3x3, stride-1, padding-1, undilated, ungrouped ``nn.Conv2d`` at least ``min_channels`` wide in and
    out (default :data:`MIN_CHANNELS`)."""
    return (
        type(module) in (torch.nn.Conv2d, WinogradConv2d)
        and module.kernel_size == (3, 3)
        and module.stride == (1, 1)
        and module.padding == (1, 1)
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.padding_mode == "zeros"
        and min(module.in_channels, module.out_channels) >= (MIN_CHANNELS if min_channels is None else min_channels)
    )


class WinogradConv2d(torch.nn.Conv2d):
    """``nn.Conv2d`` whose inference calls in float32 on CPU, on inputs of :data:`MIN_PIXELS` or more, run
    NNPACK's Winograd convolution (one item of the batch at a time: faster than NNPACK's batched mode here)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._winograd_applies(x):
            return super().forward(x)
        bias = self.bias if self.bias is not None else x.new_zeros(self.out_channels)
        try:
            rows = [
                torch._nnpack_spatial_convolution(row, self.weight, bias, [1, 1]) for row in x.contiguous().split(1)
            ]
        except RuntimeError as err:  # NNPACK refused this call: the ordinary convolution, and say so once
            if not _warned:
                _warned.append(str(err))
                import warnings

                warnings.warn(f"NNPACK failed ({err}); this convolution runs oneDNN's instead", stacklevel=2)
            return super().forward(x)
        return torch.cat(rows) if len(rows) > 1 else rows[0]

    def _winograd_applies(self, x: torch.Tensor) -> bool:
        grads = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and x.dim() == 4
            and x.shape[-2] * x.shape[-1] >= MIN_PIXELS
            and not grads
        )


def enable_winograd(module: torch.nn.Module) -> int:
    """Switch ``module``'s eligible convolutions to :class:`WinogradConv2d` in place; returns how many are."""
    count = 0
    for sub in module.modules():
        if eligible(sub):
            sub.__class__ = WinogradConv2d
            count += 1
    return count


def disable_winograd(module: torch.nn.Module) -> None:
    """Undo :func:`enable_winograd`."""
    for sub in module.modules():
        if type(sub) is WinogradConv2d:
            sub.__class__ = torch.nn.Conv2d


def winograd_layers(module: torch.nn.Module) -> int:
    """How many of ``module``'s convolutions are switched."""
    return sum(type(sub) is WinogradConv2d for sub in module.modules())


def direct_conv(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    """oneDNN's convolution with ``conv``'s parameters (the reference the tests and the benchmark compare with)."""
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
