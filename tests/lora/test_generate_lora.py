"""`tta generate --lora ADAPTER[:SCALE]` (repeatable): the sidecar records each adapter, `--from-sidecar` reloads
them bit for bit, and a changed adapter file is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tests.lora.test_adapter import _write
from tta.cli import main
from tta.cli.lora import parse_spec

FAST = ["--steps", "2", "--duration", "0.3", "--no-progress", "--seed", "3"]


@pytest.fixture
def adapters(tmp_path, tta_model_dir):
    from tta.pipelines import TTAPipeline

    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    return _write(tmp_path, pipe, 4, 7, "a.safetensors"), _write(tmp_path, pipe, 8, 8, "b.safetensors")


def test_parse_spec():
    assert parse_spec("x/a.safetensors") == ("x/a.safetensors", 1.0)
    assert parse_spec("x/a.safetensors:0.5") == ("x/a.safetensors", 0.5)
    assert parse_spec("C:/a.safetensors") == ("C:/a.safetensors", 1.0)


def test_generate_with_stacked_adapters_and_regenerate(tmp_path, tta_model_dir, adapters):
    a, b = adapters
    gen = ["generate", "--model", str(tta_model_dir), *FAST, "a growl"]
    assert main([*gen, "-o", str(tmp_path / "base.wav")]) == 0
    assert main([*gen, "-o", str(tmp_path / "l.wav"), "--lora", str(a), "--lora", f"{b}:0.5"]) == 0
    meta = json.loads((tmp_path / "l.json").read_text())
    assert [(e["path"], e["scale"]) for e in meta["lora"]] == [(str(a), 1.0), (str(b), 0.5)]
    assert all(len(e["hash"]) == 16 for e in meta["lora"])
    assert "lora" not in json.loads((tmp_path / "base.json").read_text())
    base, tuned = sf.read(tmp_path / "base.wav")[0], sf.read(tmp_path / "l.wav")[0]
    assert not np.array_equal(base, tuned)
    assert main(["generate", "--from-sidecar", str(tmp_path / "l.json"), "-o", str(tmp_path / "r.wav")]) == 0
    assert np.array_equal(sf.read(tmp_path / "r.wav")[0], tuned)
    b.write_bytes(a.read_bytes())  # the adapter file changed since
    assert main(["generate", "--from-sidecar", str(tmp_path / "l.json"), "-o", str(tmp_path / "r2.wav")]) == 2
