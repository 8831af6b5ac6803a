"""LoRA adapters for a tta model's UNet: the file format (:mod:`tta.lora.adapter`) and loading them on a
pipeline (:mod:`tta.lora.apply`, ``pipe.load_lora`` / ``pipe.unload_lora``). ``tta finetune`` trains them
(:mod:`tta.training.finetune`)."""

from tta.lora.adapter import (
    ATTENTION_TARGETS,
    CONV_TARGETS,
    Adapter,
    adapter_state,
    describe,
    file_hash,
    lora_config,
    read_adapter,
    save_adapter,
)
from tta.lora.apply import load_lora, loaded_adapters, unload_lora

__all__ = [
    "ATTENTION_TARGETS",
    "CONV_TARGETS",
    "Adapter",
    "adapter_state",
    "describe",
    "file_hash",
    "load_lora",
    "loaded_adapters",
    "lora_config",
    "read_adapter",
    "save_adapter",
    "unload_lora",
]
