"""`tta edit` end to end on a tiny model: outputs and sidecars match the pipeline; every bad input is one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tta.cli import main

SR = 16000
FAST = ["--steps", "2", "--no-progress", "--seed", "3"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edit-inputs")
    rng = np.random.default_rng(0)
    sf.write(folder / "full.wav", rng.standard_normal(int(0.5 * SR)).astype(np.float32) * 0.1, SR)
    sf.write(folder / "phone.wav", rng.standard_normal(4000).astype(np.float32) * 0.1, 8000)  # 0.5 s at 8 kHz
    (folder / "notes.wav").write_text("not audio at all\n")
    sf.write(folder / "two_hours.flac", np.zeros(2 * 3600 * 8000, dtype=np.int16), 8000)
    return folder


@pytest.fixture
def edit(tta_model_dir):
    def run(*args: str) -> int:
        return main(["edit", *args, "--model", str(tta_model_dir), *FAST])

    return run


def test_style_transfer_writes_what_the_pipeline_makes(edit, inputs, tmp_path, tiny_pipe):
    out = tmp_path / "style.wav"
    assert edit("style", str(inputs / "full.wav"), "--prompt", "a dog barks", "--strength", "0.5", "-o", str(out)) == 0
    wav, sr = sf.read(out, dtype="float32")
    expected = tiny_pipe.edit(inputs / "full.wav", "a dog barks", strength=0.5, seed=3, num_inference_steps=2)
    assert sr == SR and wav.shape == (int(0.5 * SR),)
    np.testing.assert_allclose(wav, np.clip(expected.audios[0], -1, 1), atol=2 / 32768)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["mode"] == "style" and meta["strength"] == 0.5 and meta["seed"] == 3 and meta["steps"] == 2
    assert meta["input"] == str((inputs / "full.wav").resolve()) and len(meta["input_sha256"]) == 64
    assert meta["model_hash"] and meta["num_samples"] == 8000


def test_inpaint_and_superres_record_their_region(edit, inputs, tmp_path):
    assert edit("inpaint", str(inputs / "full.wav"), "--prompt", "a cat", "--range", "0.1:0.2", "--range",
                "0.3:0.9", "-o", str(tmp_path)) == 0  # fmt: skip
    meta = json.loads((tmp_path / "full_inpaint.json").read_text())
    assert meta["ranges"] == [[0.1, 0.2], [0.3, 0.5]] and meta["feather"] == 0.05  # clipped to the input
    assert edit("superres", str(inputs / "phone.wav"), "-o", str(tmp_path)) == 0
    meta = json.loads((tmp_path / "phone_superres.json").read_text())
    assert meta["cutoff_hz"] == pytest.approx(4000, abs=100) and meta["prompt"]
    assert sf.info(tmp_path / "phone_superres.wav").samplerate == SR
    assert sf.info(tmp_path / "phone_superres.wav").frames == 8000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["style", "full.wav", "--prompt", "  "], "the prompt is empty"),
        (["style", "notes.wav", "--prompt", "dog"], "cannot read audio file"),
        (["style", "two_hours.flac", "--prompt", "dog"], "lasts 7200.0 s; edits take at most 60 s"),
        (["style", "missing.wav", "--prompt", "dog"], "audio file not found"),
        (
            ["style", "full.wav", "--prompt", "dog", "--strength", "1.5"],
            "--strength: strength must be between 0 and 1",
        ),
        (
            ["style", "full.wav", "--prompt", "dog", "--strength", "-0.2"],
            "--strength: strength must be between 0 and 1",
        ),
        (["inpaint", "full.wav", "--prompt", "dog", "--range", "abc"], "START:END"),
        (["inpaint", "full.wav", "--prompt", "dog", "--range", "2:1"], "0 <= start < end"),
        (["inpaint", "full.wav", "--prompt", "dog", "--range", "3:4"], "starts after the input's end"),
        (["superres", "full.wav", "--cutoff-hz", "9000"], "cut-off must be between"),
        (
            ["style", "full.wav", "--prompt", "dog", "--steps", "0"],
            "--steps: num_inference_steps must be an integer between 1 and 500",
        ),
        (["style", "full.wav", "--prompt", "dog", "--sampler", "nope"], "unknown sampler"),
    ],
)
def test_bad_input_is_one_line_before_any_model_loads(inputs, capsys, args, message):
    argv = ["edit", args[0], str(inputs / args[1]), *FAST, "--model", str(inputs / "no-such-model"), *args[2:]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tta: error: ") and message in err[0], err


def test_full_band_superres_without_cutoff_is_a_clear_error(edit, inputs, capsys):
    assert edit("superres", str(inputs / "full.wav")) == 2
    assert "already has content up to 8000 Hz" in capsys.readouterr().err


def test_no_stack_trace_from_the_command_line(inputs):
    proc = subprocess.run(
        [sys.executable, "-m", "tta", "edit", "style", str(inputs / "notes.wav"), "--prompt", "dog"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("tta: error: cannot read audio file")


def test_help_documents_the_modes(capsys):
    with pytest.raises(SystemExit):
        main(["edit", "inpaint", "--help"])
    text = capsys.readouterr().out
    assert "--range START:END" in text and "--feather" in text and "--strength" in text
