"""Model CPU offload for GPUs with less memory than the whole model: each component sits in CPU memory and moves
to the GPU only while it runs (accelerate's ``cpu_offload_with_hook``, chained text encoder -> UNet -> VAE ->
vocoder, so bringing one in sends the previous one back), like diffusers' ``enable_model_cpu_offload``.

Peak GPU memory is then the largest component plus activations instead of the sum of them all (AudioLDM 2: the
FLAN-T5-large encoder, ~1.4 GB in float32, or the UNet, rather than every module together). Each call pays the
transfers (a few hundred MB per component per call).

A text encoder is offloaded when its ``encode_text`` goes through its ``forward`` (``offload_via_forward``, as
:class:`tta.families.common.PackedTextEncoder` does); any other CLAP is small and stays on the GPU for good.
"""

from __future__ import annotations

import torch


def enable_model_cpu_offload(pipe, device: str | torch.device = "cuda"):
    """Offload ``pipe``'s modules to the CPU between uses, running each on ``device``. Returns ``pipe``.

    Call it instead of ``pipe.to(device)`` (after any dtype cast: ``pipe.to(dtype=torch.float16)``); moving the
    pipeline afterwards undoes it. ``pipe.device`` then reports ``device``, where latents and conditions are made.
    """
    from accelerate import cpu_offload_with_hook

    device = torch.device(device)
    hook = None
    modules = [pipe.unet, pipe.vae, pipe.vocoder]
    if getattr(pipe.clap, "offload_via_forward", False):
        modules.insert(0, pipe.clap)
    else:
        pipe.clap.to(device)
    for module in modules:
        module.to("cpu")
        _, hook = cpu_offload_with_hook(module, execution_device=device, prev_module_hook=hook)
    pipe._offload_device = device
    return pipe


def execution_device(pipe) -> torch.device | None:
    """Where an offloaded pipeline runs (None: not offloaded)."""
    return getattr(pipe, "_offload_device", None)
