"""``loudness=`` / ``--loudness LUFS``: every output at the target integrated loudness, true peak under the limit,
and the measured loudness and gain recorded in the settings and the sidecar."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tta.audio.loudness import measure_loudness, true_peak
from tta.cli import main
from tta.errors import InputError

KW = {"num_inference_steps": 2, "progress": False, "audio_length_in_s": 1.5}


@pytest.mark.parametrize("target", [-23.0, -14.0])
def test_outputs_reach_the_target_with_the_true_peak_kept(tiny_pipe, target):
    plain = tiny_pipe(["a dog barks", "thunder", "rain"], seed=3, **KW)
    out = tiny_pipe(["a dog barks", "thunder", "rain"], seed=3, loudness=target, **KW)
    np.testing.assert_allclose(measure_loudness(out.audios, out.sample_rate), target, atol=0.5)
    assert (true_peak(out.audios) <= out.settings["peak_limit"] + 1e-6).all()
    np.testing.assert_allclose(out.loudness_measured, measure_loudness(plain.audios, out.sample_rate), atol=1e-6)
    assert out.settings["loudness"] == target and out.settings_for(1)["loudness_gain_db"] == out.loudness_gain_db[1]
    assert plain.loudness_measured is None and plain.settings["loudness"] is None


def test_bad_targets_are_refused(tiny_pipe):
    for bad in (5.0, -100.0, float("nan"), "loud"):
        with pytest.raises(InputError, match="loudness"):
            tiny_pipe("a dog barks", loudness=bad, **KW)


def test_cli_loudness_is_in_the_sidecar_and_regenerates(tta_model_dir, tmp_path):
    out = tmp_path / "dog.wav"
    args = ["generate", "a dog barks", "--model", str(tta_model_dir), "--steps", "2", "--duration", "1.5"]
    assert main([*args, "--seed", "4", "--loudness", "-20", "-o", str(out), "--no-progress"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    wav, sr = sf.read(out, dtype="float32")
    assert meta["loudness"] == -20.0 and abs(measure_loudness(wav[None], sr)[0] + 20.0) < 0.6  # 16-bit file
    assert np.isfinite(meta["loudness_measured"]) and np.isfinite(meta["loudness_gain_db"])
    again = tmp_path / "again.wav"
    assert main(["generate", "--from-sidecar", str(out.with_suffix(".json")), "-o", str(again), "--no-progress"]) == 0
    assert again.read_bytes() == out.read_bytes()
    assert main([*args, "--loudness", "3", "-o", str(tmp_path / "x.wav")]) == 2
