"""TTAPipeline on a tiny random tta model: shapes, any duration, seeds, negative prompts, re-ranking, I/O."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from tta import TTAPipeline, load_clap
from tta.errors import InputError, ModelLoadError
from tta.sampling import MAX_DURATION_S

KW = {"num_inference_steps": 2, "progress": False}


def test_output_shape_and_rate(tiny_pipe):
    out = tiny_pipe(["a dog barks", "thunder"], audio_length_in_s=0.5, num_waveforms_per_prompt=2, seed=0, **KW)
    assert isinstance(out.audios, np.ndarray) and out.audios.dtype == np.float32
    assert out.audios.shape == (4, 8000)
    assert out.sample_rate == 16000
    assert out.seeds == [0, 1, 2, 3]
    assert np.all(np.isfinite(out.audios)) and np.abs(out.audios).max() > 1e-3


@pytest.mark.parametrize("duration", [0.013, 0.37, 1.01])
def test_any_duration_is_padded_then_trimmed(tiny_pipe, duration):
    out = tiny_pipe("rain on a roof", audio_length_in_s=duration, seed=1, **KW)
    assert out.audios.shape == (1, round(duration * 16000))
    layout = tiny_pipe.layout(duration)
    assert layout.latent_shape[1] % 2 == 0  # whole frames at every UNet level (tiny UNet: factor 2)


def test_same_seed_same_audio_different_seed_different_audio(tiny_pipe):
    a = tiny_pipe("a dog barks", audio_length_in_s=0.3, seed=5, **KW).audios
    b = tiny_pipe("a dog barks", audio_length_in_s=0.3, seed=5, **KW).audios
    c = tiny_pipe("a dog barks", audio_length_in_s=0.3, seed=6, **KW).audios
    assert np.array_equal(a, b)
    assert not np.allclose(a, c, atol=1e-4)


def test_generator_and_latents_like_diffusers(tiny_pipe):
    a = tiny_pipe("a cat", audio_length_in_s=0.3, generator=torch.Generator().manual_seed(3), **KW)
    shape = tiny_pipe.layout(0.3).latent_shape
    latents = torch.randn((1, *shape), generator=torch.Generator().manual_seed(3))
    b = tiny_pipe("a cat", audio_length_in_s=0.3, latents=latents, **KW)
    c = tiny_pipe("a cat", audio_length_in_s=0.3, seed=3, **KW)
    assert a.seeds is None and b.seeds is None
    assert np.array_equal(a.audios, b.audios) and np.array_equal(a.audios, c.audios)


def test_negative_prompt_and_guidance_change_the_output(tiny_pipe):
    base = tiny_pipe("a cat", audio_length_in_s=0.3, seed=2, **KW).audios
    neg = tiny_pipe("a cat", audio_length_in_s=0.3, seed=2, negative_prompt="birds", **KW).audios
    nog = tiny_pipe("a cat", audio_length_in_s=0.3, seed=2, guidance_scale=1.0, **KW).audios
    assert not np.allclose(base, neg, atol=1e-4)
    assert not np.allclose(base, nog, atol=1e-4)


@pytest.mark.parametrize("sampler", ["dpmpp-2m", "ddim", "euler", "unipc"])
def test_every_sampler_runs(tiny_pipe, sampler):
    out = tiny_pipe("a cat", audio_length_in_s=0.2, seed=0, sampler=sampler, **KW)
    assert out.audios.shape == (1, 3200) and np.all(np.isfinite(out.audios))


def test_progress_bar_and_callback(tiny_pipe, capsys):
    calls = []
    tiny_pipe("a cat", audio_length_in_s=0.2, seed=0, num_inference_steps=3, callback=lambda i, t, x: calls.append(i))
    assert calls == [0, 1, 2]
    assert "denoising" in capsys.readouterr().err


def test_reranking_keeps_the_best_candidate(tiny_pipe):
    out = tiny_pipe(["a dog barks", "thunder"], audio_length_in_s=0.5, seed=10, num_candidates=3, **KW)
    assert out.audios.shape == (2, 8000) and out.clap_scores.shape == (2,)
    all_ = tiny_pipe(["a dog barks", "thunder"], audio_length_in_s=0.5, seed=10, num_waveforms_per_prompt=3, **KW)
    clap = tiny_pipe.clap
    sims = (
        clap.encode_text(["a dog barks"] * 3 + ["thunder"] * 3) * clap.encode_audio(torch.from_numpy(all_.audios))
    ).sum(-1)
    best = sims.view(2, 3).argmax(1)
    assert out.seeds == [10 + int(best[0]), 13 + int(best[1])]
    np.testing.assert_allclose(out.clap_scores, sims.view(2, 3).max(1).values.numpy(), atol=1e-5)
    np.testing.assert_allclose(out.audios, all_.audios[[int(best[0]), 3 + int(best[1])]], atol=1e-5)


def test_reranking_needs_an_audio_clap(audioldm_dir):
    pipe = TTAPipeline.from_pretrained(audioldm_dir)
    with pytest.raises(InputError, match="audio tower"):
        pipe("a cat", audio_length_in_s=0.2, num_candidates=2, **KW)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"prompt": ""}, "empty"),
        ({"prompt": "   "}, "empty"),
        ({"prompt": ["ok", " "]}, "empty"),
        ({"prompt": []}, "non-empty"),
        ({"audio_length_in_s": 0}, "> 0"),
        ({"audio_length_in_s": -1.0}, "> 0"),
        ({"audio_length_in_s": float("nan")}, "> 0"),
        ({"audio_length_in_s": MAX_DURATION_S + 1}, "maximum"),
        ({"num_inference_steps": 0}, "between 1 and 500"),
        ({"num_inference_steps": 501}, "between 1 and 500"),
        ({"guidance_scale": float("nan")}, "between 0 and 100"),
        ({"guidance_scale": float("inf")}, "between 0 and 100"),
        ({"sampler": "plms"}, "unknown sampler"),
        ({"num_candidates": 0}, "between 1 and 32"),
        ({"negative_prompt": ["a", "b"]}, "negative"),
        ({"seed": -1}, "seed must be an integer between 0"),
        ({"latents": torch.zeros(1, 8, 3, 16)}, "shape"),
    ],
)
def test_bad_inputs_raise_input_error(tiny_pipe, kwargs, match):
    args = {"prompt": "a cat", "audio_length_in_s": 0.2, **KW, **kwargs}
    with pytest.raises(InputError, match=match):
        tiny_pipe(**args)


def test_save_and_load_round_trip(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "copy")
    index = json.loads((tmp_path / "copy" / "model_index.json").read_text())
    assert index["_class_name"] == "TTAPipeline" and index["clap"] == ["tta", "hf-clap"]
    for sub in ("unet", "vae", "vocoder", "clap"):
        assert (tmp_path / "copy" / sub / "config.json").is_file()
    assert not list((tmp_path / "copy").rglob("*.bin"))
    mask = os.umask(0)
    os.umask(mask)
    for path in [tmp_path / "copy", *(tmp_path / "copy").rglob("*")]:  # readable by others, as the umask allows
        wanted = (0o755 if path.is_dir() else 0o644) & ~mask
        assert path.stat().st_mode & wanted == wanted, path
    again = TTAPipeline.from_pretrained(tmp_path / "copy")
    a = tiny_pipe("a dog", audio_length_in_s=0.2, seed=4, **KW).audios
    b = again("a dog", audio_length_in_s=0.2, seed=4, **KW).audios
    assert np.array_equal(a, b)


def test_saving_over_a_model_folder_keeps_its_other_files(tiny_pipe, tmp_path):
    """A model card or samples next to the components survive a save over the folder; stale components do not."""
    folder = tmp_path / "model"
    tiny_pipe.save_pretrained(folder)
    (folder / "README.md").write_text("model card")
    (folder / "samples").mkdir()
    (folder / "samples" / "a.wav").write_bytes(b"RIFF")
    (folder / "unet" / "stale.safetensors").write_bytes(b"old")
    (folder / "tokenizer").mkdir()  # a diffusers component: replaced with the rest
    tiny_pipe.save_pretrained(folder)
    assert (folder / "README.md").read_text() == "model card"
    assert (folder / "samples" / "a.wav").read_bytes() == b"RIFF"
    assert not (folder / "unet" / "stale.safetensors").exists() and not (folder / "tokenizer").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    TTAPipeline.from_pretrained(folder)


def test_diffusers_folder_saves_as_tta_folder(audioldm_dir, tmp_path):
    pipe = TTAPipeline.from_pretrained(audioldm_dir)
    pipe.save_pretrained(tmp_path / "converted")
    again = TTAPipeline.from_pretrained(tmp_path / "converted")
    assert type(again.clap).__name__ == "HFClapText"
    a = pipe("a dog", audio_length_in_s=0.2, seed=4, **KW).audios
    assert np.array_equal(a, again("a dog", audio_length_in_s=0.2, seed=4, **KW).audios)


def test_no_default_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TTA_MODEL", str(tmp_path / "nothing"))
    with pytest.raises(ModelLoadError, match="no default model.*--model PATH.*tta convert"):
        TTAPipeline.from_pretrained()


def test_default_model_from_env(tta_model_dir, monkeypatch):
    monkeypatch.setenv("TTA_MODEL", str(tta_model_dir))
    pipe = TTAPipeline.from_pretrained()
    assert pipe.clap.has_audio


@pytest.mark.parametrize(
    "breakage, match",
    [
        (lambda d: (d / "unet" / "diffusion_pytorch_model.safetensors").unlink(), "missing weights"),
        (lambda d: (d / "vocoder" / "config.json").unlink(), "missing file"),
        (lambda d: (d / "model_index.json").write_text("{not json"), "corrupt JSON"),
        (lambda d: (d / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}'), "names"),
        (lambda d: (d / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage" * 10), "cannot load"),
        (lambda d: (d / "scheduler" / "scheduler_config.json").unlink(), "missing file"),
        (lambda d: shutil.rmtree(d / "clap"), "missing file"),
    ],
)
def test_broken_model_folder_is_a_clear_error(tta_model_dir, tmp_path, breakage, match):
    folder = tmp_path / "model"
    shutil.copytree(tta_model_dir, folder)
    breakage(folder)
    with pytest.raises(ModelLoadError, match=match):
        TTAPipeline.from_pretrained(folder)


def test_broken_diffusers_folder_is_a_clear_error(audioldm_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(audioldm_dir, folder)
    (folder / "text_encoder" / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="missing weights"):
        TTAPipeline.from_pretrained(folder)


def test_load_clap_api(clap_dir, audioldm_dir):
    clap = load_clap(clap_dir)
    t = clap.encode_text(["a dog", "rain"])
    a = clap.encode_audio(torch.randn(3, 8000) * 0.1)
    assert t.shape == (2, 32) and a.shape == (3, 32)
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(3))
    text_only = load_clap(audioldm_dir / "text_encoder")
    assert not text_only.has_audio and text_only.encode_text(["a"]).shape == (1, 32)
    with pytest.raises(ModelLoadError, match="text tower only"):
        text_only.encode_audio(torch.zeros(1, 100))


def test_bfloat16_runs_close_to_float32(tta_model_dir):
    fp32 = TTAPipeline.from_pretrained(tta_model_dir)
    bf16 = TTAPipeline.from_pretrained(tta_model_dir, torch_dtype=torch.bfloat16)
    assert bf16.unet.dtype == torch.bfloat16 and bf16.vocoder.dtype == torch.bfloat16
    a = fp32("a dog", audio_length_in_s=0.3, seed=1, **KW).audios
    b = bf16("a dog", audio_length_in_s=0.3, seed=1, **KW).audios
    assert b.dtype == np.float32 and np.all(np.isfinite(b))
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 0.2


@pytest.mark.parametrize("sampler", ["dpmpp-2m", "ddim", "euler", "unipc"])
def test_one_step_works_for_every_sampler(tiny_pipe, sampler):
    out = tiny_pipe("a cat", audio_length_in_s=0.02, seed=0, sampler=sampler, num_inference_steps=1, progress=False)
    assert np.all(np.isfinite(out.audios))


def test_vocoding_the_kept_frames_matches_vocoding_all(tiny_pipe):
    """Vocoding only the first frames (the rest pad the latents) gives the same samples as vocoding all of them,
    up to the trailing edge: the margin past the kept end covers the vocoder's receptive field."""
    torch.manual_seed(0)
    mel = torch.randn(2, 1, 128, int(tiny_pipe.vocoder.config.model_in_dim)) - 4.0
    with torch.inference_mode():
        full = tiny_pipe.vocode(mel)
        part = tiny_pipe.vocode(mel, num_frames=60)
    assert part.shape == (2, 60 * tiny_pipe.hop_length)
    scale = float(full.abs().max())
    assert float((part - full[:, : part.shape[1]]).abs().max()) < 1e-5 * scale
    assert tiny_pipe.vocode(mel, num_frames=500).shape == full.shape  # more frames than there are: all of them
