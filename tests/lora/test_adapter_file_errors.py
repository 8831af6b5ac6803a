"""An adapter file that is missing, not safetensors, or not a tta adapter is one ModelLoadError line naming it;
a conv adapter's targets survive the file."""

import pytest
import torch
from safetensors.torch import save_file

from tta.errors import ModelLoadError
from tta.lora import describe, lora_config, read_adapter, save_adapter


def test_missing_or_corrupt_file_is_one_line(tmp_path):
    with pytest.raises(ModelLoadError, match="missing.safetensors not found"):
        read_adapter(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors at all")
    with pytest.raises(ModelLoadError, match="bad.safetensors is not a readable safetensors file") as err:
        read_adapter(bad)
    assert "\n" not in str(err.value)


def test_foreign_safetensors_is_rejected(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="other.safetensors is not a tta LoRA adapter"):
        read_adapter(other)


def test_conv_targets_and_metadata_survive_the_file(tmp_path):
    config = lora_config(rank=8, alpha=4, conv=True)
    state = {"down.0.conv1.lora_A.weight": torch.randn(8, 3, 3, 3), "down.0.conv1.lora_B.weight": torch.zeros(3, 8)}
    path = save_adapter(tmp_path / "a.safetensors", state, config, "abc", captions=["b", "a", "b"], training={"x": 1})
    adapter = read_adapter(path)
    assert adapter.config.r == 8 and adapter.config.lora_alpha == 4
    assert adapter.config.target_modules == config.target_modules and "conv2" in adapter.config.target_modules
    assert adapter.captions == ["a", "b"] and adapter.training == {"x": 1} and adapter.base_model_hash == "abc"
    assert all(torch.equal(adapter.state[k], v) for k, v in state.items())
    info = describe(adapter)
    assert info["layers"] == 1 and info["parameters"] == 8 * 27 + 24 and info["bytes"] == path.stat().st_size
