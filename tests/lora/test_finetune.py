"""`tta finetune` on a tiny random model: captions (and the error without them), the adapter it writes, `tta lora
info`, `--full`, and resume after SIGKILL with the same final weights as an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import sigkill_after_checkpoint
from tta.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def _clips(folder: Path, n: int = 4, captions: bool = True) -> Path:
    from tta.audio.io import save_audio

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        t = np.arange(int(0.7 * 16000)) / 16000
        wav = 0.3 * np.sin(2 * np.pi * (300 + 100 * i) * t) * rng.uniform(0.5, 1.0, t.size)
        save_audio(folder / f"creature_growl_{i}.wav", wav.astype(np.float32), 16000)
        if captions:
            (folder / f"creature_growl_{i}.txt").write_text(f"a small creature growls {i}\n")
    return folder


def _args(data, out, model, run_dir, steps=4, extra=()):
    return [
        "finetune", str(data), "-o", str(out), "--model", str(model), "--steps", str(steps), "--batch-size", "2",
        "--clip-seconds", "0.64", "--lr", "1e-2", "--rank", "4", "--run-dir", str(run_dir), "--threads", "1",
        "--checkpoint-every", "2", "--preview-every", "0", "--no-progress", *extra,
    ]  # fmt: skip


def test_caption_less_folder_names_the_routes(tmp_path, tta_model_dir, capsys):
    from tta.cli import main
    from tta.training.finetune_data import captioned_entries

    data = _clips(tmp_path / "bare", 2, captions=False)
    with pytest.raises(InputError, match="no caption for creature_growl_0.wav and 1 more.*--captions-from-names"):
        captioned_entries(data, None, False)
    assert main(_args(data, tmp_path / "a.safetensors", tta_model_dir, tmp_path / "run")) == 2
    assert "--captions-from-names" in capsys.readouterr().err
    entries = captioned_entries(data, None, True)
    assert [e["captions"] for e in entries] == [["creature growl"], ["creature growl"]]


def test_finetune_writes_an_adapter_that_loads_and_changes_the_output(tmp_path, tta_model_dir, capsys):
    from tta.cli import main
    from tta.lora import read_adapter
    from tta.pipelines import TTAPipeline

    data, out = _clips(tmp_path / "clips"), tmp_path / "growl.safetensors"
    assert main(_args(data, out, tta_model_dir, tmp_path / "run")) == 0
    adapter = read_adapter(out)
    assert adapter.captions == [f"a small creature growls {i}" for i in range(4)]
    assert adapter.training["steps"] == 4 and adapter.training["rank"] == 4 and adapter.config.r == 4
    assert list((tmp_path / "run" / "previews").glob("step_0000004_*.wav"))  # the preview at the end
    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    assert adapter.base_model_hash == pipe.model_hash
    kw = dict(audio_length_in_s=0.64, num_inference_steps=2, seed=0, progress=False)
    base = pipe("a small creature growls", **kw).audios
    pipe.load_lora(out)
    assert not np.array_equal(pipe("a small creature growls", **kw).audios, base)
    capsys.readouterr()
    assert main(["lora", "info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rank: 4" in printed and "a small creature growls 3" in printed and adapter.file_hash in printed


def test_full_finetune_writes_a_model_folder(tmp_path, tta_model_dir):
    from tta.cli import main
    from tta.pipelines import TTAPipeline

    data, out = _clips(tmp_path / "clips", 2), tmp_path / "model"
    assert main(_args(data, out, tta_model_dir, tmp_path / "run", steps=2, extra=["--full"])) == 0
    tuned, base = TTAPipeline.from_pretrained(out), TTAPipeline.from_pretrained(tta_model_dir)
    moved = [n for n, p in tuned.unet.state_dict().items() if not torch.equal(p, base.unet.state_dict()[n])]
    assert len(moved) > 10  # every kind of weight trains, not an adapter


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path, tta_model_dir):
    from tta.cli import main
    from tta.lora import read_adapter

    data = _clips(tmp_path / "clips")
    assert main(_args(data, tmp_path / "whole.safetensors", tta_model_dir, tmp_path / "run_whole", 12)) == 0
    killed = tmp_path / "killed.safetensors"
    cmd = [sys.executable, "-m", "tta", *_args(data, killed, tta_model_dir, tmp_path / "run_killed", 12)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    ckpts = tmp_path / "run_killed" / "checkpoints"
    saved = sigkill_after_checkpoint(proc, ckpts, 4, timeout=300)
    assert not killed.exists()
    assert 4 <= saved < 12
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"(step {saved})" in out.stdout
    a, b = read_adapter(tmp_path / "whole.safetensors").state, read_adapter(killed).state
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_index_beside_the_adapter_extends_the_models_prior(tmp_path, tta_model_dir, capsys):
    import shutil

    from tta.cli import main
    from tta.loading import clap_fingerprint
    from tta.models.prior import RetrievalPrior
    from tta.pipelines import TTAPipeline
    from tta.pipelines.conditioning import resolve_conditioning
    from tta.retrieval import RetrievalIndex

    model = tmp_path / "with_prior"
    shutil.copytree(tta_model_dir, model)
    dim = json.loads((model / "unet" / "config.json").read_text())["projection_class_embeddings_input_dim"]
    torch.manual_seed(0)
    RetrievalPrior(torch.randn(6, dim), top_k=2).save_pretrained(model / "prior", clap_fingerprint(model / "clap"))
    data = _clips(tmp_path / "clips", 2)
    adapter = tmp_path / "a.safetensors"
    assert main(_args(data, adapter, model, tmp_path / "run", steps=2)) == 0
    index = tmp_path / "a.index"  # the default: beside the adapter, because the model has a prior
    assert f"--lora {adapter} --retrieval {index}" in capsys.readouterr().out
    assert len(RetrievalIndex.load(index)) == 2
    pipe = TTAPipeline.from_pretrained(model)
    assert len(resolve_conditioning(pipe, index).prior.embeddings) == 6 + 2
    gen = ["generate", "a clip", "--model", str(model), "--steps", "2", "--duration", "0.3", "--no-progress"]
    assert main([*gen, "--lora", str(adapter), "--retrieval", str(index), "-o", str(tmp_path / "g.wav")]) == 0
    assert json.loads((tmp_path / "g.json").read_text())["retrieval"] == str(index)
    # a model without a prior gets no index by default, and asking for one is a clear error
    assert main(_args(data, tmp_path / "b.safetensors", tta_model_dir, tmp_path / "run_b", steps=2)) == 0
    assert not (tmp_path / "b.index").exists()
    extra = ["--index-out", str(tmp_path / "c.index")]
    assert main(_args(data, tmp_path / "c.safetensors", tta_model_dir, tmp_path / "run_c", steps=2, extra=extra)) == 2
    assert "neither a prior/ nor a retrieval/" in capsys.readouterr().err


def test_finetune_on_diffusers_audioldm_weights(tmp_path, audioldm_dir, capsys):
    """AudioLDM weights as the base (a diffusers folder: CLAP's text tower only, so crops train on their captions'
    text embeddings): the adapter loads onto that model and changes its output; --full is refused in one line."""
    from tta.cli import main
    from tta.loading import model_hash
    from tta.lora import read_adapter
    from tta.pipelines import TTAPipeline

    data = _clips(tmp_path / "clips", 2)
    adapter = tmp_path / "a.safetensors"
    assert main(_args(data, adapter, audioldm_dir, tmp_path / "run", steps=3)) == 0
    assert read_adapter(adapter).base_model_hash == model_hash(audioldm_dir)
    assert read_adapter(adapter).training["text_cond_prob"] == 1.0
    pipe = TTAPipeline.from_pretrained(audioldm_dir)
    run = dict(audio_length_in_s=0.64, num_inference_steps=2, seed=0, progress=False)
    base = pipe("a small creature growls", **run).audios
    pipe.load_lora(adapter, 1.0)
    tuned = pipe("a small creature growls", **run).audios
    assert tuned.shape == base.shape and np.abs(tuned - base).max() > 0
    out = tmp_path / "full"
    assert main(_args(data, out, audioldm_dir, tmp_path / "run_full", steps=2, extra=["--full"])) == 2
    assert "needs a CLAP with an audio tower" in capsys.readouterr().err


def test_resuming_past_max_steps_says_so(tmp_path, tta_model_dir, capsys):
    from tta.cli import main

    data = _clips(tmp_path / "clips", 2)
    out, run = tmp_path / "a.safetensors", tmp_path / "run"
    assert main(_args(data, out, tta_model_dir, run, steps=2, extra=["--no-index"])) == 0
    capsys.readouterr()
    assert main(_args(data, out, tta_model_dir, run, steps=1, extra=["--no-index"])) == 0
    assert "at or past max_steps 1: nothing left to train" in capsys.readouterr().out
