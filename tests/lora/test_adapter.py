"""LoRA adapters on tiny random models: file round trip, scale 0, stacking against peft's weighted merge, the base
model's hash, unloading."""

from __future__ import annotations

import copy

import pytest
import torch

from tta.errors import ModelLoadError
from tta.lora import adapter_state, describe, file_hash, lora_config, read_adapter, save_adapter


def _random_adapter(unet, rank: int, seed: int, conv: bool = False):
    """A peft adapter on a copy of ``unet`` with random (non-zero) A and B, its state and config."""
    from peft import inject_adapter_in_model

    cfg = lora_config(rank=rank, conv=conv)
    model = copy.deepcopy(unet)
    inject_adapter_in_model(cfg, model, adapter_name="a")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return adapter_state(model, "a"), cfg


def _write(tmp_path, pipe, rank, seed, name, conv=False, base_hash="own"):
    state, cfg = _random_adapter(pipe.unet, rank, seed, conv)
    base = pipe.model_hash if base_hash == "own" else base_hash
    return save_adapter(tmp_path / name, state, cfg, base, ["a creature growls"], {"rank": rank, "steps": 3})


def _gen(pipe, seed=0):
    return pipe("a dog barks", audio_length_in_s=0.64, num_inference_steps=2, seed=seed, progress=False).audios


def _unet_out(unet, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, unet.config.in_channels, 16, 16, generator=g)
    cond = torch.randn(2, unet.config.projection_class_embeddings_input_dim, generator=g)
    with torch.no_grad():
        return unet(x, torch.tensor([10, 500]), encoder_hidden_states=None, class_labels=cond).sample


@pytest.fixture
def pipe(tta_model_dir):
    from tta.pipelines import TTAPipeline

    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    yield pipe
    pipe.unload_lora()


def test_round_trip_same_output_and_metadata(tmp_path, pipe):
    """Save an adapter, load it: the UNet computes what the in-memory adapter did; the metadata comes back."""
    from peft import inject_adapter_in_model
    from peft.utils import set_peft_model_state_dict

    state, cfg = _random_adapter(pipe.unet, 4, 1, conv=True)
    path = save_adapter(tmp_path / "a.safetensors", state, cfg, pipe.model_hash, ["growl", "growl"], {"lr": 1e-4})
    ref = copy.deepcopy(pipe.unet)
    inject_adapter_in_model(cfg, ref, adapter_name="x")
    set_peft_model_state_dict(ref, state, adapter_name="x")
    base = _unet_out(pipe.unet)
    pipe.load_lora(path)
    out = _unet_out(pipe.unet)
    assert torch.equal(out, _unet_out(ref))
    assert not torch.allclose(out, base)  # the adapter does something
    back = read_adapter(path)
    assert back.base_model_hash == pipe.model_hash and back.captions == ["growl"] and back.training == {"lr": 1e-4}
    assert back.config.r == 4 and back.state.keys() == state.keys()
    info = describe(back)
    assert info["parameters"] == sum(t.numel() for t in state.values()) and info["hash"] == file_hash(path)
    assert any("conv1" in k for k in back.state) and any("to_q" in k for k in back.state)


def test_scale_zero_and_unload_are_the_base_model_bit_for_bit(tmp_path, pipe):
    base = _gen(pipe)
    base_keys = set(pipe.unet.state_dict())
    pipe.load_lora(_write(tmp_path, pipe, 4, 2, "a.safetensors"), scale=0.0)
    assert (_gen(pipe) == base).all()
    assert pipe.model_settings()["lora"][0]["scale"] == 0.0
    pipe.unload_lora()
    pipe.load_lora(_write(tmp_path, pipe, 4, 2, "a.safetensors"), scale=1.0)
    assert not (_gen(pipe) == base).all()
    pipe.unload_lora()
    assert (_gen(pipe) == base).all()
    assert set(pipe.unet.state_dict()) == base_keys and "lora" not in pipe.model_settings()


def test_stacking_matches_peft_weighted_merge(tmp_path, pipe):
    """Two adapters at scales 1 and 0.5 compute what peft's ``add_weighted_adapter(..., "cat")`` merge does."""
    from peft import get_peft_model

    a, b = _write(tmp_path, pipe, 4, 3, "a.safetensors"), _write(tmp_path, pipe, 8, 4, "b.safetensors")
    ref = get_peft_model(copy.deepcopy(pipe.unet), read_adapter(a).config, adapter_name="first")
    ref.add_adapter("second", read_adapter(b).config)
    for path, name in ((a, "first"), (b, "second")):  # peft's keys under the PeftModel, with the adapter name
        state = {
            f"base_model.model.{k[: -len('.weight')]}.{name}.weight": v for k, v in read_adapter(path).state.items()
        }
        assert not ref.load_state_dict(state, strict=False).unexpected_keys
    ref.add_weighted_adapter(["first", "second"], [1.0, 0.5], "both", combination_type="cat")
    ref.set_adapter("both")
    pipe.load_lora(a, 1.0)
    pipe.load_lora(b, 0.5)
    expected = _unet_out(ref.base_model.model)
    got = _unet_out(pipe.unet)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    only_a = copy.deepcopy(pipe)
    only_a.unload_lora()
    only_a.load_lora(a, 1.0)
    assert not torch.allclose(_unet_out(only_a.unet), got, atol=1e-4)  # the second adapter counts
    assert [e["scale"] for e in pipe.model_settings()["lora"]] == [1.0, 0.5]


def test_adapter_for_another_base_model_is_one_line_error(tmp_path, pipe):
    path = _write(tmp_path, pipe, 4, 5, "other.safetensors", base_hash="0123456789abcdef")
    with pytest.raises(ModelLoadError, match="made for base model 0123456789abcdef") as err:
        pipe.load_lora(path)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelLoadError, match="not found"):
        pipe.load_lora(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ModelLoadError, match="not a readable safetensors"):
        pipe.load_lora(tmp_path / "junk.safetensors")


def test_stacking_is_quiet_about_peft_config(tmp_path, pipe, recwarn):
    a, b = _write(tmp_path, pipe, 4, 3, "a.safetensors"), _write(tmp_path, pipe, 4, 4, "b.safetensors")
    pipe.load_lora(a)
    pipe.load_lora(b)
    assert not [w for w in recwarn if "peft_config" in str(w.message)]
    pipe.unload_lora()
