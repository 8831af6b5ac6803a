"""`tta data build` / `tta data summary` end to end on the fixture archive."""

from tta.cli import main


def test_build_and_summary(fixture_archive, tmp_path, capsys):
    out = tmp_path / "corpus"
    argv = ["data", "build", "--out", str(out), "--debs", str(fixture_archive["debs"])]
    argv += ["--sources", str(fixture_archive["sources"]), "--offline", "--workers", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "dog barking" in text and "skipped" in text and "package corrupt" in text
    assert (out / "manifest.jsonl").is_file() and (out / "LICENSES.md").is_file()
    assert "fakesounds" in (out / "LICENSES.md").read_text()
    assert main(["data", "summary", "--root", str(out)]) == 0
    assert "TOTAL" in capsys.readouterr().out


def test_user_errors_exit_2(tmp_path, capsys):
    assert main(["data", "summary", "--root", str(tmp_path)]) == 2
    assert main(["data", "build", "--out", str(tmp_path), "--sources", str(tmp_path / "nope.tsv")]) == 2
    assert main(["data", "build", "--out", str(tmp_path), "--workers", "0"]) == 2


def test_config_file_and_unknown_keys(fixture_archive, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("max_per_label:\n  dog barking: 1\nworkers: 1\n")
    out = tmp_path / "c"
    argv = ["data", "build", "--out", str(out), "--debs", str(fixture_archive["debs"]), "--offline"]
    argv += ["--sources", str(fixture_archive["sources"]), "--label", "dog barking", "--config", str(good)]
    assert main(argv) == 0
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_per_lable: {}\n")
    assert main(["data", "build", "--out", str(out), "--config", str(bad)]) == 2
