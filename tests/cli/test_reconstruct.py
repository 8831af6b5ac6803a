"""`tta reconstruct` on a tiny model folder that has only vae/ and vocoder/: outputs, lengths, one-line errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.evaluation.tiny_decoder import save_decoder_folder
from tta.cli import main

SR = 16000
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_decoder_folder(tmp_path_factory.mktemp("recon-model"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recon-inputs")
    rng = np.random.default_rng(0)
    t = np.arange(int(0.5 * SR)) / SR
    sf.write(folder / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    stereo = rng.standard_normal((int(0.3 * 22050), 2)).astype(np.float32) * 0.1
    sf.write(folder / "noise.flac", stereo, 22050)  # 0.3 s, stereo, 22.05 kHz
    return folder


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tta: error: "), err
    return err[0]


def test_writes_one_wav_per_input_with_its_duration(model_dir, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["reconstruct", str(inputs / "tone.wav"), str(inputs / "noise.flac"), "-o", str(out)]
    assert main([*argv, "--model", str(model_dir), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["noise.wav", "tone.wav"]
    assert sf.info(out / "tone.wav").samplerate == SR and sf.info(out / "tone.wav").frames == 8000
    assert sf.info(out / "noise.wav").frames == round(0.3 * SR) and sf.info(out / "noise.wav").channels == 1
    wav, _ = sf.read(out / "tone.wav")
    assert np.abs(wav).max() > 1e-3
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and "tone.wav ->" in lines[0] and "(0.50 s)" in lines[0]
    assert lines[-1].startswith("reconstructed 2 file(s) (vae+vocoder)")


def test_folder_input_vocoder_only_and_metrics(model_dir, inputs, tmp_path, capsys):
    vocoder_only = tmp_path / "vocoder-only-model"
    shutil.copytree(model_dir / "vocoder", vocoder_only / "vocoder")  # no vae/ at all
    out = tmp_path / "out"
    argv = ["reconstruct", str(inputs), "-o", str(out), "--model", str(vocoder_only), "--no-progress"]
    assert main([*argv, "--vocoder-only", "--metrics"]) == 0
    text = capsys.readouterr().out
    assert text.count("log-mel L1") == 3 and "LSD" in text and "MR-STFT" in text
    assert "(vocoder)" in text.strip().splitlines()[-1] and "mean log-mel L1" in text
    assert sorted(p.name for p in out.iterdir()) == ["noise.wav", "tone.wav"]
    # without --vocoder-only the same folder lacks the VAE
    assert (
        main(["reconstruct", str(inputs / "tone.wav"), "-o", str(tmp_path / "o2"), "--model", str(vocoder_only)]) == 2
    )
    assert f"missing file {vocoder_only}/vae/config.json" in error_line(capsys)
    # the VAE changes the sound
    full_out = tmp_path / "full"
    assert main(["reconstruct", str(inputs / "tone.wav"), "-o", str(full_out), "--model", str(model_dir)]) == 0
    assert not np.allclose(sf.read(full_out / "tone.wav")[0], sf.read(out / "tone.wav")[0])


@pytest.mark.parametrize(
    ("path", "damage", "flags"),
    [
        ("vae/diffusion_pytorch_model.safetensors", "delete", []),
        ("vae/config.json", "corrupt", []),
        ("vocoder/model.safetensors", "truncate", ["--vocoder-only"]),
        ("vocoder/config.json", "delete", ["--vocoder-only"]),
    ],
)
def test_damaged_model_file_is_exit_2_naming_it(model_dir, inputs, tmp_path, capsys, path, damage, flags):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    target = folder / path
    if damage == "delete":
        target.unlink()
    elif damage == "corrupt":
        target.write_text("{oops")
    else:
        target.write_bytes(target.read_bytes()[:100])
    argv = ["reconstruct", str(inputs / "tone.wav"), "-o", str(tmp_path / "out"), "--model", str(folder), *flags]
    assert main(argv) == 2
    assert str(target) in error_line(capsys)
    assert not (tmp_path / "out" / "tone.wav").exists()


def test_missing_default_model_says_how_to_pick_one(inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TTA_MODEL", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    assert main(["reconstruct", str(inputs / "tone.wav"), "-o", str(tmp_path / "out")]) == 2
    line = error_line(capsys)
    assert f"{tmp_path}/empty/vocoder/config.json" in line and "--model PATH" in line


def test_bad_inputs_are_exit_2_before_the_model_loads(inputs, tmp_path, capsys):
    (tmp_path / "notes.wav").write_text("not audio\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(inputs / "tone.wav", tmp_path / "a" / "clip.wav")
    sf.write(tmp_path / "b" / "clip.flac", np.zeros(1600, dtype=np.float32), SR)
    sf.write(tmp_path / "tiny.wav", np.zeros(100, dtype=np.float32), SR)
    (tmp_path / "empty").mkdir()
    no_model = ["--model", str(tmp_path / "no-such-model")]
    cases = [
        ([str(tmp_path / "notes.wav")], "cannot read audio file"),
        ([str(tmp_path / "missing.wav")], "input not found"),
        ([str(tmp_path / "a" / "clip.wav"), str(tmp_path / "b")], "two inputs would both be written as"),
        ([str(tmp_path / "tiny.wav")], "is too short"),
        ([str(tmp_path / "empty")], "no audio files in folder"),
    ]
    for args, message in cases:
        assert main(["reconstruct", *args, "-o", str(tmp_path / "out"), *no_model]) == 2
        assert message in error_line(capsys), args
    # writing into the input's own folder would overwrite it
    assert main(["reconstruct", str(tmp_path / "a" / "clip.wav"), "-o", str(tmp_path / "a"), *no_model]) == 2
    assert "refusing to overwrite input" in error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["reconstruct", "--help"])
    text = capsys.readouterr().out
    assert "--vocoder-only" in text and "--model PATH" in text and "--metrics" in text and "-o DIR" in text
