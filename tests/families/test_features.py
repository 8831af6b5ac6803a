"""What every family shares with AudioLDM 1 through the one core: editing (style, inpaint, super-resolution),
lower precision, model CPU offload; and the features its conditioning rules out, as one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tta.errors import InputError
from tta.pipelines import TTAPipeline

FAMILIES = ["audioldm2_dir", "musicldm_dir", "tango_dir"]
RUN = dict(num_inference_steps=2, progress=False)


@pytest.fixture(scope="module", params=FAMILIES)
def pipe(request):
    return TTAPipeline.from_pretrained(request.getfixturevalue(request.param))


def test_edit_inpaint_and_super_resolve(pipe):
    wav = pipe("a dog barks", audio_length_in_s=0.64, seed=1, **RUN).audios[0]
    kw = dict(sample_rate=16000, seed=2, **RUN)
    edited = pipe.edit(wav, "a cat meows twice", strength=0.5, **kw).audios
    inpainted = pipe.inpaint(wav, "thunder", ranges=[(0.2, 0.4)], **kw).audios
    wider = pipe.super_resolve(wav, cutoff_hz=4000, **kw).audios
    for out in (edited, inpainted, wider):
        assert out.shape == (1, wav.shape[0]) and np.isfinite(out).all()
    assert np.abs(edited[0] - wav).max() > 1e-4


def test_bfloat16_is_close_to_float32(pipe, tmp_path):
    latents = torch.randn((1, *pipe.layout(0.64).latent_shape), generator=torch.Generator().manual_seed(0))
    full = pipe("thunder", audio_length_in_s=0.64, latents=latents.clone(), peak_limit=None, **RUN).audios
    low = TTAPipeline.from_pretrained(pipe.name_or_path, torch_dtype=torch.bfloat16)
    assert low.dtype == torch.bfloat16
    half = low("thunder", audio_length_in_s=0.64, latents=latents.clone(), peak_limit=None, **RUN).audios
    assert np.linalg.norm(half - full) / np.linalg.norm(full) < 0.1


def test_model_cpu_offload_gives_the_same_waveform(pipe):
    """On the CPU the hooks move nothing, but every module is reached through them (no GPU in this session)."""
    fresh = TTAPipeline.from_pretrained(pipe.name_or_path)
    latents = torch.randn((1, *pipe.layout(0.64).latent_shape), generator=torch.Generator().manual_seed(4))
    run = dict(audio_length_in_s=0.64, latents=latents, negative_prompt="noise", **RUN)
    expected = pipe("birds sing at dawn", **run).audios
    fresh.enable_model_cpu_offload("cpu")
    assert hasattr(fresh.unet, "_hf_hook") and fresh.device == torch.device("cpu")
    np.testing.assert_array_equal(fresh("birds sing at dawn", **run).audios, expected)


def test_retrieval_and_composition_need_clap_rows(pipe, tmp_path):
    with pytest.raises(InputError, match="retrieval"):
        pipe("thunder", retrieval=tmp_path, **RUN)
    with pytest.raises(InputError, match="prior"):
        pipe("a dog barks in the rain", compose=True, **RUN)


def test_saving_a_cross_attention_family_is_one_line_error(pipe, tmp_path):
    if not hasattr(pipe.unet, "packer"):  # MusicLDM's plain UNet and CLAP save as a tta folder
        saved = TTAPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "tta"))
        assert saved.clap.has_audio
        return
    with pytest.raises(InputError, match="own folder format"):
        pipe.save_pretrained(tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("family", FAMILIES)
def test_demo_page_and_tta_eval_run_each_family(family, request, clap_dir, tmp_path):
    """The demo's page handler (through its model cache) and `tta generate` -> `tta eval` on a family folder."""
    import json

    from tta.cli import main
    from tta.demo.app import _page
    from tta.demo.handlers import run_generate
    from tta.demo.models import ModelCache

    folder = request.getfixturevalue(family)
    run = _page(run_generate, ModelCache(), default=str(folder), inputs=7)
    (rate, audio), _, settings, cli = run(None, "a dog barks", "", 0.5, 2, 2.5, 4, 1)
    assert rate == 16000 and audio.shape == (8000,) and settings["seed"] == 4 and f"--model {folder}" in cli
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    for i, prompt in enumerate(["a dog barks", "thunder rumbles"]):
        args = ["generate", prompt, "--model", str(folder), "--steps", "2", "--duration", "0.5", "--seed", str(i)]
        assert main([*args, "--no-progress", "-o", str(gen / f"clip{i}.wav")]) == 0
        args[-1] = str(i + 7)
        assert main([*args, "--no-progress", "-o", str(ref / f"clip{i}.wav")]) == 0
    out = tmp_path / "report"
    args = ["eval", "--generated", str(gen), "--reference", str(ref), "-o", str(out), "--no-progress"]
    assert main([*args, "--backend", "laion-clap", "--backend-weights", str(clap_dir)]) == 0
    metrics = json.loads((out / "report.json").read_text())["metrics"]
    assert np.isfinite(metrics["fad"]) and np.isfinite(metrics["clap_score"])
