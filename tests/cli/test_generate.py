"""`tta generate` end to end on a tiny model: WAVs, sidecars, regeneration, and every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tta.cli import main
from tta.cli.common import slugify

FAST = ["--steps", "2", "--duration", "0.3", "--no-progress"]


@pytest.fixture
def gen(tta_model_dir):
    def run(*args: str) -> int:
        return main(["generate", "--model", str(tta_model_dir), *FAST, *args])

    return run


def read(path):
    wav, sr = sf.read(str(path), dtype="float32")
    return wav, sr


def test_writes_wavs_and_sidecars(gen, tmp_path):
    out = tmp_path / "out"
    assert gen("a dog barks", "birds sing", "-o", str(out), "--seed", "11") == 0
    wavs = sorted(out.glob("*.wav"))
    assert [w.name for w in wavs] == ["a_dog_barks_000.wav", "birds_sing_001.wav"]
    for k, wav_path in enumerate(wavs):
        wav, sr = read(wav_path)
        assert sr == 16000 and wav.shape == (4800,) and np.abs(wav).max() > 0
        meta = json.loads(wav_path.with_suffix(".json").read_text())
        assert meta["seed"] == 11 + k and meta["sampler"] == "dpmpp-2m" and meta["steps"] == 2
        assert meta["duration"] == 0.3 and meta["guidance"] == 2.5 and meta["model_hash"]
        for key in ("prompt", "negative_prompt", "model", "tta_version", "torch_version", "candidates", "batch_size"):
            assert key in meta
    assert not list(out.glob(".*"))  # no temp files left


def test_single_file_output_and_prompts_file(gen, tmp_path):
    assert gen("rain", "-o", str(tmp_path / "rain.wav"), "--seed", "1") == 0
    assert read(tmp_path / "rain.wav")[0].shape == (4800,)
    assert (tmp_path / "rain.json").is_file()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("wind\n\n  thunder  \n")
    assert gen("--prompts-file", str(prompts), "-o", str(tmp_path / "many"), "--sampler", "ddim") == 0
    assert sorted(p.name for p in (tmp_path / "many").glob("*.wav")) == ["thunder_001.wav", "wind_000.wav"]


def test_mel_png_beside_each_wav(gen, tmp_path):
    """--mel-png writes <name>.png, a real PNG whose picture changes with the audio."""
    out = tmp_path / "out"
    assert gen("a dog barks", "birds sing", "-o", str(out), "--seed", "2", "--mel-png") == 0
    pngs = sorted(out.glob("*.png"))
    assert [p.stem for p in pngs] == [w.stem for w in sorted(out.glob("*.wav"))]
    import matplotlib.image

    pictures = [matplotlib.image.imread(str(p)) for p in pngs]
    assert all(p.ndim == 3 and p.shape[0] > 100 for p in pictures)
    assert pictures[0].shape != pictures[1].shape or not np.array_equal(pictures[0], pictures[1])
    assert not list(out.glob(".*"))
    assert gen("rain", "-o", str(tmp_path / "plain")) == 0 and not list((tmp_path / "plain").glob("*.png"))


def test_same_seed_same_file_different_seed_different_file(gen, tmp_path):
    gen("a cat", "-o", str(tmp_path / "a.wav"), "--seed", "3")
    gen("a cat", "-o", str(tmp_path / "b.wav"), "--seed", "3")
    gen("a cat", "-o", str(tmp_path / "c.wav"), "--seed", "4")
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert (tmp_path / "a.wav").read_bytes() != (tmp_path / "c.wav").read_bytes()


def test_one_output_regenerates_alone_from_its_seed(gen, tmp_path):
    gen("a dog barks", "birds sing", "thunder", "-o", str(tmp_path / "all"), "--seed", "20")
    meta = json.loads((tmp_path / "all" / "birds_sing_001.json").read_text())
    gen(meta["prompt"], "-o", str(tmp_path / "again.wav"), "--seed", str(meta["seed"]))
    assert (tmp_path / "again.wav").read_bytes() == (tmp_path / "all" / "birds_sing_001.wav").read_bytes()


def test_regenerates_bit_for_bit_from_sidecar_with_batches_and_candidates(gen, tmp_path):
    out = tmp_path / "all"
    args = ("a dog barks", "birds sing", "thunder", "-o", str(out), "--batch-size", "2", "--candidates", "2")
    assert gen(*args, "--negative", "noise") == 0
    for name in ("birds_sing_001", "thunder_002"):
        meta = json.loads((out / f"{name}.json").read_text())
        assert "clap_score" in meta and meta["candidates"] == 2 and meta["negative_prompt"] == "noise"
        regen = tmp_path / f"{name}.wav"
        assert main(["generate", "--from-sidecar", str(out / f"{name}.json"), "-o", str(regen), "--no-progress"]) == 0
        assert regen.read_bytes() == (out / f"{name}.wav").read_bytes()


def test_console_script_end_to_end(tta_model_dir, tmp_path):
    cmd = [sys.executable, "-m", "tta", "generate", "a bell rings", "--model", str(tta_model_dir), *FAST]
    proc = subprocess.run([*cmd, "-o", str(tmp_path / "bell.wav")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert read(tmp_path / "bell.wav")[0].shape == (4800,)


@pytest.mark.parametrize(
    "args, match",
    [
        (["", "-o", "{tmp}/x"], "empty"),
        (["   ", "-o", "{tmp}/x"], "empty"),
        (["-o", "{tmp}/x"], "no prompt"),
        (["a", "--duration", "0", "-o", "{tmp}/x"], "> 0"),
        (["a", "--duration", "-2", "-o", "{tmp}/x"], "> 0"),
        (["a", "--duration", "61", "-o", "{tmp}/x"], "maximum"),
        (["a", "--duration", "nan", "-o", "{tmp}/x"], "> 0"),
        (["a", "--steps", "0", "-o", "{tmp}/x"], "--steps"),
        (["a", "--steps", "501", "-o", "{tmp}/x"], "--steps"),
        (["a", "--guidance", "nan", "-o", "{tmp}/x"], "--guidance"),
        (["a", "--guidance", "inf", "-o", "{tmp}/x"], "--guidance"),
        (["a", "--sampler", "plms", "-o", "{tmp}/x"], "unknown sampler"),
        (["a", "--candidates", "0", "-o", "{tmp}/x"], "--candidates"),
        (["a", "--batch-size", "0", "-o", "{tmp}/x"], "--batch-size"),
        (["a", "b", "-o", "{tmp}/one.wav"], "single file"),
        (["a", "--prompts-file", "{tmp}/missing.txt", "-o", "{tmp}/x"], "cannot read prompts file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tta_model_dir, tmp_path, capsys, args, match):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code = main(["generate", "--model", str(tta_model_dir), "--no-progress", "--steps", "1", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("tta: error:") and match in err and "\n" not in err
    assert not list(tmp_path.rglob("*.wav"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_fails_before_generation(tta_model_dir, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = main(["generate", "a", "--model", str(tta_model_dir), "-o", str(locked / "sub")])
    finally:
        locked.chmod(0o700)
    assert code == 2 and "cannot write" in capsys.readouterr().err


def test_output_path_that_is_a_file_fails(tta_model_dir, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["generate", "a", "b", "--model", str(tta_model_dir), "-o", str(tmp_path / "afile")]) == 2
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("what", ["missing", "broken"])
def test_bad_model_folder_is_exit_2(tta_model_dir, tmp_path, capsys, what):
    model = tmp_path / "model"
    if what == "broken":
        import shutil

        shutil.copytree(tta_model_dir, model)
        (model / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 64)
    code = main(["generate", "a", "--model", str(model), "-o", str(tmp_path / "x"), *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("tta: error:") and "\n" not in err
    assert not list(tmp_path.rglob("*.wav"))


def test_missing_default_model_says_how_to_point_at_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TTA_MODEL", str(tmp_path / "none"))
    assert main(["generate", "a", "-o", str(tmp_path / "x"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "no default model" in err and "--model PATH" in err


def test_slugify():
    assert slugify("A Dog barks!! in the rain...") == "a_dog_barks_in_the_rain"
    assert slugify("???") == "audio"
    assert len(slugify("x" * 200)) <= 48


def test_output_under_a_file_is_unwritable(tta_model_dir, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code = main(["generate", "a", "--model", str(tta_model_dir), "-o", str(tmp_path / "afile" / "sub"), *FAST])
    assert code == 2 and "cannot write" in capsys.readouterr().err


def test_bfloat16_option(gen, tmp_path):
    assert gen("a cat", "-o", str(tmp_path / "bf16.wav"), "--seed", "1", "--dtype", "bfloat16") == 0
    assert json.loads((tmp_path / "bf16.json").read_text())["dtype"] == "bfloat16"
    assert read(tmp_path / "bf16.wav")[0].shape == (4800,)


def test_diffusers_audioldm_folder_with_separate_reranking_clap(audioldm_dir, clap_dir, tmp_path, capsys):
    base = ["generate", "a cat", "--model", str(audioldm_dir), *FAST, "--seed", "2"]
    assert main([*base, "-o", str(tmp_path / "plain.wav")]) == 0
    assert main([*base, "--candidates", "2", "-o", str(tmp_path / "x.wav")]) == 2
    assert "audio tower" in capsys.readouterr().err
    assert main([*base, "--candidates", "2", "--clap", str(clap_dir), "-o", str(tmp_path / "ranked.wav")]) == 0
    assert "clap_score" in json.loads((tmp_path / "ranked.json").read_text())
    assert main(["generate", "--from-sidecar", str(tmp_path / "ranked.json"), "-o", str(tmp_path / "again.wav")]) == 0
    assert (tmp_path / "again.wav").read_bytes() == (tmp_path / "ranked.wav").read_bytes()


def test_shards_write_the_same_files_as_one_process(gen, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"sound {i}\n" for i in range(5)))
    common = ("--prompts-file", str(prompts), "--batch-size", "2", "--seed", "5")
    assert gen(*common, "-o", str(tmp_path / "one")) == 0
    assert gen(*common, "-o", str(tmp_path / "split"), "--shard", "1/2") == 0
    assert sorted(p.name for p in (tmp_path / "split").glob("*.wav")) == ["sound_2_002.wav", "sound_3_003.wav"]
    assert gen(*common, "-o", str(tmp_path / "split"), "--shard", "0/2") == 0
    one, split = sorted((tmp_path / "one").glob("*.wav")), sorted((tmp_path / "split").glob("*.wav"))
    assert [p.name for p in one] == [p.name for p in split] and len(one) == 5
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, split))


def test_shard_from_accelerate_environment(gen, tmp_path, monkeypatch):
    from tta.cli.common import resolve_device
    from tta.cli.generate import parse_shard

    assert parse_shard(None, {"RANK": "2", "WORLD_SIZE": "3"}) == (2, 3)
    assert parse_shard(None, {}) == (0, 1)
    assert parse_shard("1/4") == (1, 4)
    assert resolve_device("cpu") == "cpu"
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert gen("a", "b", "c", "-o", str(tmp_path / "env"), "--seed", "1") == 0
    assert sorted(p.name for p in (tmp_path / "env").glob("*.wav")) == ["b_001.wav"]


def test_skip_existing_resumes(gen, tmp_path, capsys):
    out = tmp_path / "out"
    assert gen("a", "b", "-o", str(out), "--seed", "1") == 0
    (out / "b_001.wav").unlink()
    before = (out / "a_000.wav").stat().st_mtime_ns
    capsys.readouterr()
    assert gen("a", "b", "-o", str(out), "--seed", "1", "--skip-existing") == 0
    assert capsys.readouterr().out.split() == [str(out / "b_001.wav")]
    assert (out / "a_000.wav").stat().st_mtime_ns == before
    assert gen("a", "b", "-o", str(out), "--seed", "1", "--skip-existing") == 0
    assert "nothing to generate" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, match",
    [
        (["--shard", "2/2"], "--shard"),
        (["--shard", "x"], "--shard"),
        (["--shard", "0/2"], "needs --seed"),
    ],
)
def test_bad_shard(tta_model_dir, tmp_path, capsys, args, match):
    code = main(["generate", "a", "--model", str(tta_model_dir), "-o", str(tmp_path / "x"), *FAST, *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and match in err and "\n" not in err
