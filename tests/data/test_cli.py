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
