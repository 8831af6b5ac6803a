"""Peak limiting: loud waveforms scaled down as a whole, quiet ones untouched; the pipeline, CLI and writer."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from tta.audio.io import save_audio
from tta.audio.limiter import check_peak_limit, limit_peaks
from tta.cli import main
from tta.errors import InputError


def test_quiet_waveforms_are_returned_bit_for_bit():
    audio = torch.randn(3, 1000) * 0.1
    out, gains = limit_peaks(audio, 0.98)
    assert torch.equal(out, audio) and torch.equal(gains, torch.ones(3))
    out, gains = limit_peaks(audio * 20, None)  # no ceiling: nothing changes either
    assert torch.equal(out, audio * 20) and torch.equal(gains, torch.ones(3))


def test_loud_waveforms_are_scaled_to_the_ceiling_and_keep_their_shape():
    torch.manual_seed(0)
    audio = torch.randn(4, 2000) * torch.tensor([[0.1], [0.5], [2.0], [7.0]])
    peaks = audio.abs().amax(dim=1)
    out, gains = limit_peaks(audio, 0.9)
    for i in range(4):
        if peaks[i] <= 0.9:
            assert torch.equal(out[i], audio[i]) and gains[i] == 1.0
        else:
            assert math.isclose(float(out[i].abs().max()), 0.9, rel_tol=1e-6)
            assert math.isclose(float(gains[i]), 0.9 / float(peaks[i]), rel_tol=1e-6)
            torch.testing.assert_close(out[i], audio[i] * gains[i])  # one gain for the whole waveform
    assert (gains < 1).sum() == (peaks > 0.9).sum() >= 2


def test_limit_keeps_dtype_and_handles_silence():
    audio = torch.zeros(2, 100, dtype=torch.bfloat16)
    out, gains = limit_peaks(audio, 0.5)
    assert out.dtype == torch.bfloat16 and torch.equal(gains, torch.ones(2))
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        limit_peaks(torch.zeros(100), 0.5)


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, float("nan"), float("inf"), "loud", [0.5]])
def test_bad_ceilings_are_rejected(bad):
    with pytest.raises(InputError, match="peak_limit"):
        check_peak_limit(bad)


def test_good_ceilings_pass():
    assert check_peak_limit(None) is None and check_peak_limit(1) == 1.0 and check_peak_limit("0.5") == 0.5


def test_pipeline_limits_its_output_and_reports_the_gain(tiny_pipe):
    kw = dict(audio_length_in_s=0.5, num_inference_steps=2, progress=False, seed=[5, 6], guidance_scale=3.0)
    raw = tiny_pipe(["a dog barks"], num_waveforms_per_prompt=2, peak_limit=None, **kw)
    assert np.array_equal(raw.peak_gains, np.ones(2))
    peaks = np.abs(raw.audios).max(axis=1)
    ceiling = float(peaks.min() + peaks.max()) / 2  # one waveform over it, one under (different seeds)
    assert peaks.min() < ceiling < peaks.max()
    limited = tiny_pipe(["a dog barks"], num_waveforms_per_prompt=2, peak_limit=ceiling, **kw)
    loud, quiet = int(peaks.argmax()), int(peaks.argmin())
    assert np.array_equal(limited.audios[quiet], raw.audios[quiet]) and limited.peak_gains[quiet] == 1.0
    assert math.isclose(float(np.abs(limited.audios[loud]).max()), ceiling, rel_tol=1e-5)
    np.testing.assert_allclose(limited.audios[loud], raw.audios[loud] * limited.peak_gains[loud], rtol=1e-5, atol=1e-7)
    with pytest.raises(InputError, match="peak_limit"):
        tiny_pipe("a dog barks", peak_limit=2.0, **{k: v for k, v in kw.items() if k != "seed"})


def test_edit_limits_its_output(tiny_pipe):
    wav = np.sin(np.linspace(0, 400, 8000)).astype(np.float32)
    kw = dict(sample_rate=16000, strength=0.5, num_inference_steps=2, progress=False, seed=1)
    raw = tiny_pipe.edit(wav, "a bell", peak_limit=None, **kw)
    peak = float(np.abs(raw.audios).max())
    limited = tiny_pipe.edit(wav, "a bell", peak_limit=peak / 2, **kw)
    assert math.isclose(float(np.abs(limited.audios).max()), peak / 2, rel_tol=1e-5)
    assert math.isclose(float(limited.peak_gains[0]), 0.5, rel_tol=1e-5)


def test_writer_warns_when_it_clips(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_audio(tmp_path / "ok.wav", np.full(100, 0.99, dtype=np.float32))  # in range: no warning
    wav = np.linspace(-1.5, 1.5, 100, dtype=np.float32)
    with pytest.warns(UserWarning, match=r"clip.wav: 34 samples past full scale \(peak 1.50\)"):
        save_audio(tmp_path / "clip.wav", wav)
    assert np.abs(sf.read(str(tmp_path / "clip.wav"))[0]).max() <= 1.0


def test_cli_records_the_limit_and_regenerates_with_it(tta_model_dir, tmp_path, capsys):
    base = ["generate", "--model", str(tta_model_dir), "--steps", "2", "--duration", "0.3", "--no-progress"]
    assert main([*base, "a dog barks", "-o", str(tmp_path / "a.wav"), "--seed", "3", "--peak-limit", "0.01"]) == 0
    meta = json.loads((tmp_path / "a.json").read_text())
    assert meta["peak_limit"] == 0.01 and 0 < meta["peak_gain"] < 1  # random weights are louder than 0.01
    wav = sf.read(str(tmp_path / "a.wav"), dtype="float32")[0]
    assert np.abs(wav).max() <= 0.01 + 1 / 2**15
    assert main([*base, "a dog barks", "-o", str(tmp_path / "b.wav"), "--seed", "3", "--no-peak-limit"]) == 0
    meta_b = json.loads((tmp_path / "b.json").read_text())
    assert meta_b["peak_limit"] is None and meta_b["peak_gain"] == 1.0
    regen = tmp_path / "a_again.wav"
    assert main(["generate", "--from-sidecar", str(tmp_path / "a.json"), "-o", str(regen), "--no-progress"]) == 0
    assert regen.read_bytes() == (tmp_path / "a.wav").read_bytes()
    capsys.readouterr()
    for bad in ("0", "1.2", "nan"):
        assert main([*base, "x", "-o", str(tmp_path / "x.wav"), "--peak-limit", bad]) == 2
        assert "--peak-limit: peak_limit must be in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()
