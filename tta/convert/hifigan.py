"""AudioLDM's HiFi-GAN ``Generator`` (``audioldm/hifigan/models.py``) -> transformers ``SpeechT5HifiGan``.

In a released checkpoint the vocoder sits under ``first_stage_model.vocoder.`` with weight norm already
removed (``get_vocoder`` calls ``remove_weight_norm()`` before the checkpoint is loaded), so its convolutions
hold plain ``weight``/``bias``. A generator saved *with* weight norm (``weight_g``/``weight_v``, or torch's
``parametrizations.weight.original0/1``) is folded here: ``SpeechT5HifiGan`` registers no weight norm at
construction, so its state dict holds plain ``weight`` keys. Names match except ``ups`` -> ``upsampler``;
``mean``/``scale`` (unused with ``normalize_before=False``) are set to their identity values.

The weights do not record the up-sampling strides nor the residual blocks' dilations: they default to
AudioLDM's (``HIFIGAN_16K_64`` in ``audioldm/hifigan/utilities.py``).
"""

from __future__ import annotations

import re
from typing import Any

import torch
from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

from tta.convert.common import StateDict, load_converted, require
from tta.errors import ModelLoadError

AUDIOLDM_UPSAMPLE_RATES = [5, 4, 2, 2, 2]
AUDIOLDM_DILATIONS = [1, 3, 5]


def fold_weight_norm(state_dict: StateDict) -> StateDict:
    """Replace weight-norm pairs (``weight_g``/``weight_v`` or ``parametrizations.weight.original0/1``)
    by the plain ``weight`` they stand for: g * v / ||v|| with the norm over all but dim 0 (torch's default)."""
    folded: StateDict = {}
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        if m := re.match(r"(.+)\.(?:weight_g|parametrizations\.weight\.original0)$", key):
            pairs.setdefault(m.group(1), {})["g"] = value
        elif m := re.match(r"(.+)\.(?:weight_v|parametrizations\.weight\.original1)$", key):
            pairs.setdefault(m.group(1), {})["v"] = value
        else:
            folded[key] = value
    for module, pair in pairs.items():
        if set(pair) != {"g", "v"}:
            raise ModelLoadError(f"incomplete weight norm for vocoder layer {module!r}")
        folded[f"{module}.weight"] = torch._weight_norm(pair["v"], pair["g"], 0)
    return folded


def vocoder_config_from_state_dict(
    state_dict: StateDict,
    upsample_rates: list[int] | None = None,
    resblock_dilation_sizes: list[list[int]] | None = None,
    sampling_rate: int = 16000,
) -> dict[str, Any]:
    """Infer ``SpeechT5HifiGanConfig`` fields from an original generator state dict (plain weights)."""
    conv_pre = require(state_dict, "conv_pre.weight", "HiFi-GAN vocoder")
    num_ups = len({k.split(".")[1] for k in state_dict if k.startswith("ups.")})
    num_resblocks = len({k.split(".")[1] for k in state_dict if k.startswith("resblocks.")})
    if num_ups == 0 or num_resblocks % num_ups:
        raise ModelLoadError(f"the vocoder has {num_ups} up-samplers and {num_resblocks} residual blocks")
    kernels = num_resblocks // num_ups
    convs = len({k.split(".")[3] for k in state_dict if k.startswith("resblocks.0.convs1.")})
    rates = list(upsample_rates or AUDIOLDM_UPSAMPLE_RATES)
    dilations = [list(d) for d in (resblock_dilation_sizes or [AUDIOLDM_DILATIONS[:convs]] * kernels)]
    if len(rates) != num_ups or len(dilations) != kernels or any(len(d) != convs for d in dilations):
        raise ModelLoadError(
            f"the vocoder has {num_ups} up-samplers and {kernels} x {convs}-conv residual blocks per level; "
            f"up-sampling rates {rates} or dilations {dilations} do not fit"
        )
    return {
        "model_in_dim": conv_pre.shape[1],
        "sampling_rate": sampling_rate,
        "upsample_initial_channel": conv_pre.shape[0],
        "upsample_rates": rates,
        "upsample_kernel_sizes": [state_dict[f"ups.{i}.weight"].shape[-1] for i in range(num_ups)],
        "resblock_kernel_sizes": [state_dict[f"resblocks.{j}.convs1.0.weight"].shape[-1] for j in range(kernels)],
        "resblock_dilation_sizes": dilations,
        "normalize_before": False,
    }


def convert_vocoder_state_dict(state_dict: StateDict, config: dict[str, Any]) -> StateDict:
    """Rename a (weight-norm-free) original generator state dict to ``SpeechT5HifiGan`` names."""
    converted = {re.sub(r"^ups\.", "upsampler.", k): v for k, v in state_dict.items()}
    converted["mean"] = torch.zeros(config["model_in_dim"])
    converted["scale"] = torch.ones(config["model_in_dim"])
    return converted


def convert_vocoder(state_dict: StateDict, **config_overrides: Any) -> SpeechT5HifiGan:
    """An original HiFi-GAN state dict (``first_stage_model.vocoder.`` removed) -> loaded ``SpeechT5HifiGan``.

    ``config_overrides`` go to :func:`vocoder_config_from_state_dict` (``upsample_rates``...).
    """
    plain = fold_weight_norm(state_dict)
    config = vocoder_config_from_state_dict(plain, **config_overrides)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(**config))
    return load_converted(vocoder, convert_vocoder_state_dict(plain, config), "HiFi-GAN vocoder").eval()
