"""``tta eval`` on the command line: report files, and one-line errors with exit code 2 for bad input."""

from __future__ import annotations

import json

from tests.evaluation.conftest import write_folder
from tta.cli import main


def test_writes_json_markdown_and_plots(folders, clap_dir, tmp_path, capsys):
    gen, ref = folders
    out = tmp_path / "report"
    args = ["eval", "--generated", str(gen), "--reference", str(ref), "-o", str(out), "--no-progress"]
    assert main([*args, "--backend", "laion-clap", "--backend-weights", str(clap_dir), "--plots"]) == 0
    report = json.loads((out / "report.json").read_text())
    for key in ("fad", "fad_inf", "clap_score", "clap_score_x100", "kl_softmax", "kl_sigmoid", "inception_score"):
        assert key in report["metrics"]
    assert report["metrics"]["psnr"] < 100 and report["settings"]["backend"] == "laion-clap"
    printed = capsys.readouterr().out
    assert "| FAD | " in printed and "| CLAP score ×100 |" in printed
    assert (out / "report.md").read_text().startswith("Backend: `laion-clap`")
    for png in ("clap_per_class.png", "mel_best_worst.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_identical_clips_report_psnr_as_text(folders, clap_dir, tmp_path):
    gen, _ = folders
    out = tmp_path / "same"
    args = ["eval", "--generated", str(gen), "--reference", str(gen), "-o", str(out), "--no-progress"]
    assert main([*args, "--backend", "laion-clap", "--backend-weights", str(clap_dir)]) == 0
    assert json.loads((out / "report.json").read_text())["metrics"]["psnr"] == "inf"  # valid JSON, no Infinity


def test_per_clip_table_and_loudness_in_the_report(folders, clap_dir, tmp_path):
    gen, ref = folders
    out = tmp_path / "per_clip"
    args = ["eval", "--generated", str(gen), "--reference", str(ref), "-o", str(out), "--no-progress"]
    assert main([*args, "--backend", "laion-clap", "--backend-weights", str(clap_dir), "--per-clip"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert isinstance(report["metrics"]["kad"], float) and abs(report["metrics"]["kad"]) < 200  # KAD <= 2 x 100
    scores = [c["kad_distance"] for c in report["clips"]]
    assert all("clap_cosine" in c and "lufs" in c for c in report["clips"])
    md = (out / "report.md").read_text()
    assert "| KAD (kernel audio distance" in md and "| integrated loudness (LUFS) |" in md
    table = md[md.index("Per clip, farthest") :].splitlines()[4:10]
    files = [line.split(" | ")[0].strip("| ") for line in table]
    by_score = [c["file"] for c in sorted(report["clips"], key=lambda c: -c["kad_distance"])]
    assert files == by_score and len(set(scores)) == 6


def _error(capsys, *args) -> str:
    assert main(["eval", *args, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tta: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_is_one_line_and_exit_2(folders, tmp_path, capsys):
    gen, ref = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    one = write_folder(tmp_path / "one", seed=0, n=1)
    broken = write_folder(tmp_path / "broken", seed=0, n=2)
    (broken / "clip_1.wav").write_bytes(b"RIFF not really a wav file")
    assert "--kad-bandwidth" in _error(
        capsys, "--generated", str(gen), "--reference", str(ref), "--kad-bandwidth", "x"
    )
    others = write_folder(tmp_path / "others", seed=0, n=6)
    (others / "clip_5.wav").rename(others / "zzz.wav")
    assert "no audio files" in _error(capsys, "--generated", str(empty), "--reference", str(ref))
    assert "no such folder" in _error(capsys, "--generated", str(tmp_path / "nope"), "--reference", str(ref))
    assert "at least 2" in _error(capsys, "--generated", str(one), "--reference", str(ref))
    assert "--paired" in _error(capsys, "--generated", str(gen), "--reference", str(others), "--paired")
    assert "unknown --backend" in _error(capsys, "--generated", str(gen), "--reference", str(ref), "--backend", "x")
    assert "--backend-weights" in _error(
        capsys, "--generated", str(gen), "--reference", str(ref), "--backend", "vggish"
    )
    missing = str(tmp_path / "Cnn14_mAP=0.431.pth")
    err = _error(
        capsys, "--generated", str(gen), "--reference", str(ref), "--backend", "panns", "--backend-weights", missing
    )
    assert "no such file" in err
    bad_prompts = tmp_path / "p.txt"
    bad_prompts.write_text("hello\n")
    assert ".jsonl, .csv or .tsv" in _error(
        capsys, "--generated", str(gen), "--reference", str(ref), "--prompts", str(bad_prompts)
    )


def test_unreadable_file_names_it(folders, clap_dir, tmp_path, capsys):
    _, ref = folders
    broken = write_folder(tmp_path / "broken", seed=0, n=3)
    (broken / "clip_1.wav").write_bytes(b"RIFF not really a wav file")
    err = _error(
        capsys,
        "--generated",
        str(broken),
        "--reference",
        str(ref),
        "--backend",
        "laion-clap",
        "--backend-weights",
        str(clap_dir),
    )
    assert "clip_1.wav" in err


def test_unpaired_skips_kl_and_paired_metrics(folders, clap_dir, tmp_path):
    gen, ref = folders
    out = tmp_path / "unpaired"
    args = ["eval", "--generated", str(gen), "--reference", str(ref), "-o", str(out), "--no-progress", "--unpaired"]
    assert main([*args, "--backend", "laion-clap", "--backend-weights", str(clap_dir)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["paired"] == 0 and "fad" in report["metrics"]
    assert not {"kl_softmax", "kl_sigmoid", "lsd", "psnr", "mel_distance"} & set(report["metrics"])
