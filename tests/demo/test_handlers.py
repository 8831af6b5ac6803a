"""The demo's handlers, model cache and rendering, without Gradio: results, reproducible CLI lines, bad input."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import soundfile as sf

from tta.audio.melplot import spectrogram_image
from tta.cli import main
from tta.cli.common import cli_line
from tta.demo import ModelCache, list_models, run_edit, run_generate
from tta.errors import InputError, ModelLoadError

SR = 16000


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    rng = np.random.default_rng(1)
    sf.write(folder / "clip.wav", rng.standard_normal(int(0.5 * SR)).astype(np.float32) * 0.1, SR)
    sf.write(folder / "phone.wav", rng.standard_normal(4000).astype(np.float32) * 0.1, 8000)
    (folder / "notes.wav").write_text("a text file, not audio\n")
    sf.write(folder / "two_hours.flac", np.zeros(2 * 3600 * 8000, dtype=np.int16), 8000)
    return folder


def run_cli_line(line: str, out) -> np.ndarray:
    argv = shlex.split(line)
    assert argv[0] == "tta"
    assert main([*argv[1:], "-o", str(out), "--no-progress"]) == 0
    return sf.read(out, dtype="int16")[0]


def test_generate_result_and_its_cli_line(tiny_pipe, tmp_path):
    result = run_generate(tiny_pipe, "a dog barks", "", 0.5, 2, 2.5, 7, 1)
    assert result.sample_rate == SR and result.audio.dtype == np.int16 and result.audio.shape == (8000,)
    assert result.image.dtype == np.uint8 and result.image.shape == (64 * 3, 50, 3)
    assert result.settings["seed"] == 7 and result.settings["prompt"] == "a dog barks"
    assert result.cli.startswith("tta generate 'a dog barks' --duration 0.5 --steps 2 --guidance 2.5 --seed 7")
    again = run_cli_line(result.cli, tmp_path / "cli.wav")  # the line on the page reproduces the audio
    np.testing.assert_allclose(again, result.audio, atol=1)


def test_random_seed_is_reported(tiny_pipe):
    result = run_generate(tiny_pipe, "rain", None, 0.3, 2, 1.0, -1, 1)
    assert isinstance(result.settings["seed"], int) and f"--seed {result.settings['seed']}" in result.cli


@pytest.mark.parametrize(
    ("mode", "extra"),
    [("style", {"strength": 0.5}), ("inpaint", {"ranges": "0.1:0.2; 0.3:0.4"}), ("superres", {"cutoff_hz": 0})],
)
def test_edit_results_and_their_cli_lines(tiny_pipe, uploads, tmp_path, monkeypatch, mode, extra):
    upload = uploads / ("phone.wav" if mode == "superres" else "clip.wav")
    result = run_edit(tiny_pipe, mode, str(upload), "a cat meows", None, 2, 2.5, 9, **extra)
    assert result.audio.shape == (8000,) and result.settings["mode"] == mode and result.image.shape[1] == 50
    assert result.cli.startswith(f"tta edit {mode} {upload.name} --prompt 'a cat meows'")
    if mode == "superres":
        assert "--cutoff-hz 4000" in result.cli
    monkeypatch.chdir(uploads)  # the line names the uploaded file
    again = run_cli_line(result.cli, tmp_path / "cli.wav")
    np.testing.assert_allclose(again, result.audio, atol=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompt": ""}, "the prompt is empty"),
        ({"prompt": "   "}, "the prompt is empty"),
        ({"duration": 61}, "duration .* between 0 and 60"),
        ({"duration": float("nan")}, "duration"),
        ({"duration": "long"}, "must be a number"),
        ({"steps": 2.5}, "whole number"),
        ({"steps": 0}, "num_inference_steps must be an integer between"),
        ({"candidates": 0}, "num_candidates must be an integer between"),
        ({"guidance": float("inf")}, "guidance"),
        ({"seed": "abc"}, "seed must be a number"),
    ],
)
def test_generate_rejects_bad_input(tiny_pipe, kwargs, match):
    args = {"prompt": "a dog", "duration": 0.3, "steps": 2, **kwargs}
    with pytest.raises(InputError, match=match):
        run_generate(tiny_pipe, **args)


@pytest.mark.parametrize(
    ("mode", "upload", "kwargs", "match"),
    [
        ("style", None, {}, "upload an audio file"),
        ("style", "notes.wav", {}, "cannot read audio file"),
        ("style", "two_hours.flac", {}, "lasts 7200.0 s"),
        ("style", "clip.wav", {"strength": 1.5}, "strength must be between 0 and 1"),
        ("style", "clip.wav", {"strength": -0.5}, "strength must be between 0 and 1"),
        ("style", "clip.wav", {"prompt": " "}, "the prompt is empty"),
        ("inpaint", "clip.wav", {"ranges": ""}, "give the time ranges"),
        ("inpaint", "clip.wav", {"ranges": "a:b"}, "START:END"),
        ("superres", "clip.wav", {}, "already has content up to"),
        ("superres", "clip.wav", {"cutoff_hz": 20000}, "cut-off"),
        ("remix", "clip.wav", {}, "unknown edit mode"),
    ],
)
def test_edit_rejects_bad_input(tiny_pipe, uploads, mode, upload, kwargs, match):
    args = {"prompt": "a dog", "steps": 2, **kwargs}
    with pytest.raises(InputError, match=match):
        run_edit(tiny_pipe, mode, str(uploads / upload) if upload else None, **args)


def test_model_cache_loads_once_and_swaps(tta_model_dir, audioldm_dir):
    cache = ModelCache()
    first = cache.get(str(tta_model_dir))
    assert cache.get(str(tta_model_dir)) is first and cache.loads == 1
    other = cache.get(str(audioldm_dir))
    assert other is not first and cache.loads == 2
    with pytest.raises(ModelLoadError, match="no model to run: there is no trained default model yet"):
        cache.get(None)


def test_list_models_finds_model_folders(tta_model_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "model-a").mkdir()
    (tmp_path / "model-a" / "model_index.json").write_text("{}")
    found = list_models([tta_model_dir, tta_model_dir], root=tmp_path)
    assert found == [str(tta_model_dir.resolve()), str((tmp_path / "model-a").resolve())]
    assert list_models(root=tmp_path / "nothing-here") == []


def test_spectrogram_image_puts_a_tone_at_its_frequency():
    t = np.arange(SR) / SR
    low = spectrogram_image(0.5 * np.sin(2 * np.pi * 500 * t), SR, bin_height=1)
    high = spectrogram_image(0.5 * np.sin(2 * np.pi * 4000 * t), SR, bin_height=1)
    assert low.shape == (64, 100, 3) and low.dtype == np.uint8
    row_low = low.astype(int).sum(axis=(1, 2)).argmax()  # row 0 is the top (highest frequencies)
    row_high = high.astype(int).sum(axis=(1, 2)).argmax()
    assert row_high < row_low and row_low > 40 and row_high < 30
    assert spectrogram_image(np.zeros(100), SR).shape[1] >= 1  # very short input still renders


def test_cli_line_quotes_and_repeats():
    line = cli_line(["tta", "edit", "inpaint", "my file.wav"], {"prompt": "it's", "range": ["1:2", "3:4"], "x": None})
    assert shlex.split(line) == ["tta", "edit", "inpaint", "my file.wav", "--prompt", "it's", "--range", "1:2",
                                 "--range", "3:4"]  # fmt: skip
