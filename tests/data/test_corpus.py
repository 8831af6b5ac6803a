"""The corpus builder on the tiny fixture archive (no network): content, skips with reasons, resume."""

import json

import soundfile as sf

from tta.data.corpus import BuildConfig, build_corpus
from tta.data.summary import format_table, read_manifest, summarize

KEYS = {"id", "path", "source_package", "source_path", "license", "labels", "captions", "duration", "md5", "split"}


def _by_path(records):
    return {r["source_path"]: r for r in records}


def test_manifest_and_audio(built_corpus):
    records = read_manifest(built_corpus)
    assert records
    for rec in records:
        assert KEYS <= set(rec)
        assert rec["split"] in ("train", "valid", "test")
        info = sf.info(str(built_corpus / rec["path"]))
        assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
        assert abs(info.frames / 16000 - rec["duration"]) < 1e-3
        assert rec["captions"] and all(isinstance(c, str) and c for c in rec["captions"])
    paths = _by_path(records)
    # plain files, zip members, rcc entries and cat sounds all made it
    for p in (
        "usr/share/fake/dog2.ogg",
        "public.zip:audio/weather/rain_a.wav",
        "rcc:walk/resource/fs_snow_1.wav",
        "cat:00.wav",
    ):
        assert p in paths, p
    assert paths["cat:00.wav"]["license"] == "CC0-1.0"  # per-sound licence from the .cat description
    assert paths["cat:01.wav"]["license"] == "CC-BY-3.0"
    assert paths["usr/share/fake/dog1.wav"]["license"] == "TEST-LICENSE-fakesounds"
    assert "footsteps on gravel" in paths["usr/share/fake/fs_gravel3.wav"]["captions"]
    assert len({r["md5"] for r in records}) == len(records)  # de-duplicated
    assert not any(r["source_package"] == "widelands-data" for r in records)


def test_every_bad_row_is_counted_with_its_reason(built_corpus):
    summary = json.loads((built_corpus / "summary.json").read_text())
    records = read_manifest(built_corpus)
    state = {s["path"]: s["reason"] for s in summary["skipped_rows"]}
    assert state["usr/share/fake/dog_copy.wav"] == "duplicate"
    assert state["usr/share/fake/empty.wav"] == "empty audio"
    assert state["usr/share/fake/garbage.ogg"] == "unreadable audio"
    assert state["usr/share/fake/tick.wav"] == "too short"
    assert state["usr/share/fake/not_there.wav"] == "missing in package"
    assert state["usr/share/broken/thunder.wav"] == "package corrupt"
    assert state["usr/share/missing/siren.wav"] == "package unavailable"
    # nothing silently lost: every non-reserved row is either a clip or a counted skip
    n_rows = 23  # fixture rows minus the reserved one
    assert len(records) + len(state) == n_rows
    assert summary["skipped_total"] == len(state)
    assert summary["skipped"]["duplicate"] == 1


def test_summary_table_lists_classes_licences_and_skips(built_corpus):
    records = read_manifest(built_corpus)
    table = format_table(summarize(records, [{"reason": "duplicate"}]))
    assert "dog barking" in table and "CC0-1.0" in table and "duplicate" in table


def test_rebuild_is_idempotent_and_resumes(fixture_archive, tmp_path):
    config = dict(debs_dir=fixture_archive["debs"], sources=fixture_archive["sources"], workers=1, download=False)
    first = build_corpus(BuildConfig(out=tmp_path, **config))
    manifest = (tmp_path / "manifest.jsonl").read_text()
    second = build_corpus(BuildConfig(out=tmp_path, **config))
    assert "fakesounds" in second.packages_reused
    assert (tmp_path / "manifest.jsonl").read_text() == manifest
    # a lost audio file (interrupted build) makes only that package rebuild
    victim = tmp_path / first.records[0]["path"]
    victim.unlink()
    third = build_corpus(BuildConfig(out=tmp_path, **config))
    assert "fakesounds" not in third.packages_reused
    assert victim.is_file()
    assert (tmp_path / "manifest.jsonl").read_text() == manifest


def test_caps_and_filters(fixture_archive, tmp_path):
    config = BuildConfig(
        out=tmp_path,
        debs_dir=fixture_archive["debs"],
        sources=fixture_archive["sources"],
        workers=1,
        download=False,
        labels=["dog barking", "rain"],
        max_per_label={"dog barking": 1},
    )
    result = build_corpus(config)
    labels = [r["labels"][0] for r in result.records]
    assert labels.count("dog barking") == 1 and set(labels) == {"dog barking", "rain"}
    assert result.capped == {"dog barking": 4}  # 5 dog rows listed (the reserved one never counts)
    assert "left out by per-class caps" in format_table(summarize(result.records, [], result.capped))


def test_duplicates_across_packages_built_at_different_times(fixture_archive, tmp_path):
    import shutil

    from tests.data.conftest import build_deb, fixture_files

    debs = tmp_path / "debs"
    debs.mkdir()
    shutil.copy(fixture_archive["debs"] / "fakesounds_1.0_all.deb", debs)
    build_deb(tmp_path, "aaadup", {"usr/share/dup/dog.wav": fixture_files()["usr/share/fake/dog1.wav"]}, debs)
    sources = tmp_path / "sources.tsv"
    sources.write_text(
        fixture_archive["sources"].read_text() + "dog barking\taaadup\tusr/share/dup/dog.wav\t1.0\tx\tTEST\n"
    )
    config = dict(out=tmp_path / "c", debs_dir=debs, sources=sources, workers=1, download=False)
    build_corpus(BuildConfig(packages=["fakesounds"], **config))  # fakesounds first, holding dog1
    result = build_corpus(BuildConfig(packages=["fakesounds", "aaadup"], **config))  # aaadup sorts first
    md5s = [r["md5"] for r in result.records]
    assert len(md5s) == len(set(md5s))
    assert any(s.reason == "duplicate" and s.package == "fakesounds" for s in result.skipped)


def test_a_filtered_build_keeps_other_packages_audio(fixture_archive, tmp_path):
    config = dict(out=tmp_path, debs_dir=fixture_archive["debs"], sources=fixture_archive["sources"], workers=1)
    full = build_corpus(BuildConfig(download=False, **config))
    only_dogs = build_corpus(BuildConfig(download=False, labels=["dog barking"], **config))
    assert {r["labels"][0] for r in only_dogs.records} == {"dog barking"}
    assert all((tmp_path / r["path"]).is_file() for r in full.records)
