"""A model folder's own sampling defaults (``"sampling"`` in model_index.json): what the pipeline, the CLI and the
demo use when the caller gives no steps or guidance; explicit values still win; bad entries are clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tta.cli import main
from tta.errors import InputError, ModelLoadError
from tta.pipelines import DEFAULT_GUIDANCE, DEFAULT_STEPS, TTAPipeline

OWN = {"guidance_scale": 4.0, "num_inference_steps": 3}


@pytest.fixture(scope="module")
def own_dir(tta_model_dir, tmp_path_factory):
    """The tiny model saved again with its own defaults."""
    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    pipe.sampling_defaults = dict(OWN)
    folder = tmp_path_factory.mktemp("own") / "model"
    pipe.save_pretrained(folder)
    return folder


def test_saved_in_the_index_and_loaded_back(own_dir):
    index = json.loads((own_dir / "model_index.json").read_text())
    assert index["sampling"] == OWN
    pipe = TTAPipeline.from_pretrained(own_dir)
    assert pipe.sampling_defaults == OWN and (pipe.default_steps, pipe.default_guidance) == (3, 4.0)


def test_a_call_without_settings_uses_the_models_and_explicit_ones_win(own_dir):
    pipe = TTAPipeline.from_pretrained(own_dir)
    kw = dict(audio_length_in_s=0.3, seed=5, progress=False)
    own = pipe("rain", **kw).audios
    np.testing.assert_array_equal(own, pipe("rain", num_inference_steps=3, guidance_scale=4.0, **kw).audios)
    general = pipe("rain", num_inference_steps=3, guidance_scale=DEFAULT_GUIDANCE, **kw).audios
    assert not np.array_equal(own, general)  # the guidance default really changed what ran


def test_folders_without_an_entry_keep_the_general_defaults(tta_model_dir, audioldm_dir):
    assert "sampling" not in json.loads((tta_model_dir / "model_index.json").read_text())
    for folder in (tta_model_dir, audioldm_dir):
        pipe = TTAPipeline.from_pretrained(folder)
        assert pipe.sampling_defaults == {}
        assert (pipe.default_steps, pipe.default_guidance) == (DEFAULT_STEPS, DEFAULT_GUIDANCE)


@pytest.mark.parametrize(
    "entry, match",
    [
        ({"guidance": 4.0}, "unknown sampling default 'guidance'"),
        ({"guidance_scale": "high"}, "guidance_scale must be a float"),
        ({"num_inference_steps": 0}, "num_inference_steps must be a int"),
        ({"num_inference_steps": 2.5}, "num_inference_steps must be a int"),
        ([4.0], "must be a JSON object"),
    ],
)
def test_bad_entries_name_the_file(own_dir, tmp_path, entry, match):
    folder = tmp_path / "bad"
    shutil.copytree(own_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["sampling"] = entry
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match=match) as err:
        TTAPipeline.from_pretrained(folder)
    assert "model_index.json" in str(err.value)


def test_bad_defaults_are_refused_before_saving(tta_model_dir, tmp_path):
    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    with pytest.raises(InputError, match="unknown sampling default"):
        TTAPipeline(pipe.unet, pipe.vae, pipe.vocoder, pipe.clap, pipe.scheduler_config, sampling_defaults={"x": 1})
    pipe.sampling_defaults = {"guidance_scale": float("nan")}
    with pytest.raises(InputError, match="guidance_scale"):
        pipe.save_pretrained(tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_cli_records_the_settings_that_ran(own_dir, tmp_path):
    base = ["generate", "--model", str(own_dir), "--duration", "0.3", "--no-progress", "--seed", "1"]
    assert main([*base, "rain", "-o", str(tmp_path / "own.wav")]) == 0
    meta = json.loads((tmp_path / "own.json").read_text())
    assert (meta["steps"], meta["guidance"]) == (3, 4.0)
    assert main([*base, "rain", "-o", str(tmp_path / "mine.wav"), "--steps", "2", "--guidance", "1.5"]) == 0
    meta = json.loads((tmp_path / "mine.json").read_text())
    assert (meta["steps"], meta["guidance"]) == (2, 1.5)
    # the sidecar regenerates the same file, whatever the model's defaults
    assert main(["generate", "--from-sidecar", str(tmp_path / "own.json"), "--no-progress"]) == 0
    import soundfile as sf

    a, _ = sf.read(str(tmp_path / "own.wav"), dtype="float32")
    b, _ = sf.read(str(tmp_path / "own.regen.wav"), dtype="float32")
    np.testing.assert_array_equal(a, b)


def test_demo_sliders_start_at_the_models_defaults(own_dir, tta_model_dir):
    from tta.demo.models import sampling_defaults

    assert sampling_defaults(own_dir) == (3, 4.0)
    assert sampling_defaults(tta_model_dir) == sampling_defaults(None) == (DEFAULT_STEPS, DEFAULT_GUIDANCE)
