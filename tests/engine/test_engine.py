"""tta.engine on the tiny random model: each runtime's waveform against torch's, the cache's reuse and rebuild,
and a missing runtime."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from tta.engine.runtime import runtime_installed
from tta.errors import InputError
from tta.pipelines import TTAPipeline

engine_install = importlib.import_module("tta.engine.install")  # the module (tta.engine.install is also a function)
RUNTIMES = [e for e in ("onnx", "openvino") if runtime_installed(e)]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TTA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _generate(pipe):
    return pipe("a dog barks", audio_length_in_s=1.0, num_inference_steps=3, seed=3, progress=False).audios


@pytest.mark.parametrize("engine", RUNTIMES)
def test_engine_waveform_matches_torch(tta_model_dir, cache, engine):
    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    reference = _generate(pipe)
    pipe.enable_engine(engine)
    assert pipe.engine_settings["engine"] == engine
    assert pipe.engine_settings["components"]["unet"].startswith(engine)
    out = _generate(pipe)
    rel = np.abs(out - reference).max() / np.abs(reference).max()
    assert rel <= 1e-3, rel
    assert (
        pipe("a dog barks", audio_length_in_s=1.0, num_inference_steps=2, seed=1, progress=False).settings["engine"]
        == engine
    )
    import torch

    pipe.to("cpu", torch.float32)  # no move: allowed
    with pytest.raises(InputError, match="enable_engine\\('torch'\\) before"):
        pipe.to(dtype=torch.bfloat16)
    assert pipe.engine_settings["engine"] == engine and pipe.dtype == torch.float32
    pipe.enable_engine("torch")
    np.testing.assert_array_equal(_generate(pipe), reference)  # torch again: bit for bit


def test_cache_reused_and_corrupt_entry_rebuilt(tta_model_dir, cache):
    engine = RUNTIMES[0] if RUNTIMES else pytest.skip("no runtime installed")
    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    pipe.enable_engine(engine)
    unet_file = next(cache.glob("engines/*/*/unet.onnx"))
    first = unet_file.stat().st_mtime_ns
    pipe.enable_engine(engine)
    assert unet_file.stat().st_mtime_ns == first  # reused, not exported again
    data = bytearray(unet_file.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # corrupt the weights in the middle
    unet_file.write_bytes(bytes(data))
    pipe.enable_engine(engine)
    assert unet_file.stat().st_mtime_ns != first  # detected by its manifest's sha256 and exported again
    assert pipe.engine_settings["components"]["unet"].startswith(engine)


def test_stale_entry_fails_probe_and_is_rebuilt(tta_model_dir, cache):
    import torch

    engine = RUNTIMES[0] if RUNTIMES else pytest.skip("no runtime installed")
    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    pipe.enable_engine(engine)
    pipe.enable_engine("torch")
    with torch.no_grad():  # same model hash, other weights: the cached export is stale
        pipe.unet.conv_out.weight.add_(1.0)
    pipe.enable_engine(engine)
    diff = float(pipe.engine_settings["components"]["unet"].split("rel diff ")[1].rstrip(")"))
    assert diff <= 1e-3


def test_missing_runtime_is_a_clear_error_and_auto_falls_back(tta_model_dir, cache, monkeypatch):
    monkeypatch.setattr(engine_install, "runtime_installed", lambda name: False)
    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    with pytest.raises(InputError, match="onnxruntime.*tta\\[engine\\]"):
        pipe.enable_engine("onnx")
    pipe.enable_engine("auto")
    assert pipe.engine_settings == {"engine": "torch"}
    with pytest.raises(InputError, match="--engine must be one of"):
        pipe.enable_engine("tensorrt")


@pytest.mark.skipif(not RUNTIMES, reason="no engine runtime installed")
def test_a_component_that_does_not_export_stays_in_torch_quietly(tiny_pipe, cache, capfd):
    """An ISTFT vocoder (torch.istft, a torch.Generator constant) does not export: it stays in torch, the settings
    say why in one line, and the exporter's dump of the whole graph does not reach the terminal."""
    from tta.models.vocoder import build_vocoder

    vocoder = build_vocoder("istft", channels=16, hidden_channels=32, num_blocks=1, initial_phase="scrambled")
    pipe = TTAPipeline(tiny_pipe.unet, tiny_pipe.vae, vocoder.eval(), tiny_pipe.clap, tiny_pipe.scheduler_config)
    capfd.readouterr()
    pipe.enable_engine(RUNTIMES[0])
    printed = capfd.readouterr()
    said = pipe.engine_settings["components"]["vocoder"]
    assert said.startswith("torch (not exportable") and "\n" not in said
    assert "graph(" not in printed.out + printed.err, (printed.out + printed.err)[:300]
    logs = list(cache.rglob("*.export.log"))
    assert logs and "graph(" in logs[0].read_text(errors="replace")  # kept, not thrown away
    assert pipe("a dog barks", audio_length_in_s=0.5, num_inference_steps=2, seed=1, progress=False).audios.size


def test_quiet_export_passes_other_output_on_or_keeps_it(tmp_path, capfd):
    """What is written to file descriptors 1/2 during an export (another thread's output) reaches the terminal
    after a successful one and the log after a failed one."""
    import os

    from tta.engine.export import _quiet_native_output

    log = tmp_path / "x.onnx.export.log"
    capfd.readouterr()
    with _quiet_native_output(log):
        os.write(1, b"a line from another thread\n")
        assert "a line" not in capfd.readouterr().out  # held while the export runs
    assert "a line from another thread" in capfd.readouterr().err and not log.exists()
    with pytest.raises(RuntimeError), _quiet_native_output(log):
        os.write(2, b"graph(%x : Float)\n")
        raise RuntimeError("export failed")
    printed = capfd.readouterr()
    assert "graph(" not in printed.out + printed.err and "graph(%x" in log.read_text()


def test_cache_key_follows_what_is_merged_into_the_unet(tta_model_dir, cache, tmp_path):
    """A LoRA adapter (and its scale) gets its own engine entry, so switching never rebuilds another's; scale 0
    is the base model and shares its entry."""
    from tests.lora.test_adapter import _write

    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    base = engine_install.engine_dir(pipe)
    assert base.parent.name == pipe.model_hash
    adapter = _write(tmp_path, pipe, 4, 7, "a.safetensors")
    pipe.load_lora(adapter, 1.0)
    one = engine_install.engine_dir(pipe)
    pipe.unload_lora()
    pipe.load_lora(adapter, 0.5)
    half = engine_install.engine_dir(pipe)
    pipe.unload_lora()
    pipe.load_lora(adapter, 0.0)
    assert len({base, one, half}) == 3 and engine_install.engine_dir(pipe) == base
    assert one.parent.name.startswith(pipe.model_hash + "-")
