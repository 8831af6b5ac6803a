"""Where an index's recordings and captions come from: manifests, folders, CSV/JSON captions, sidecars, names."""

from __future__ import annotations

import json

import pytest

from tests.retrieval.conftest import make_sound_folder
from tta.errors import InputError
from tta.retrieval.sources import caption_from_name, folder_entries, manifest_entries, read_captions_file


def test_folder_captions_come_from_the_file_then_sidecars_then_names(sound_folder):
    root, captions = sound_folder
    entries = {e["id"]: e for e in folder_entries(root, captions, from_names=True)}
    assert sorted(entries) == [
        "noise/Wind_Gust-03.wav",
        "noise/hiss0.flac",
        "noise/hiss1.flac",
        "tones/tone_0.wav",
        "tones/tone_1.wav",
        "tones/tone_2.wav",
    ]
    assert entries["noise/hiss0.flac"]["captions"] == ["white noise hiss"]  # matched by relative path
    assert entries["noise/hiss1.flac"]["captions"] == ["a hissing steam pipe"]  # matched by file name
    assert entries["tones/tone_1.wav"]["captions"] == ["a pure tone", "a whistle number 1"]  # sidecar
    assert entries["noise/Wind_Gust-03.wav"]["captions"] == ["wind gust"]  # its name
    assert all(e["group"] == e["id"] and e["path"].startswith("/") for e in entries.values())
    no_names = {e["id"]: e for e in folder_entries(root, captions)}
    assert no_names["noise/Wind_Gust-03.wav"]["captions"] == []


def test_caption_from_name():
    assert caption_from_name(__import__("pathlib").Path("x/DogBark_in-rain_0042.wav")) == "dog bark in rain"
    assert caption_from_name(__import__("pathlib").Path("0001.wav")) == ""


def test_json_captions_as_an_object_or_a_list(tmp_path):
    obj = tmp_path / "a.json"
    obj.write_text(json.dumps({"a.wav": "one", "b.wav": ["two", "three", " "]}))
    assert read_captions_file(obj) == {"a.wav": ["one"], "b.wav": ["two", "three"]}
    rows = tmp_path / "b.json"
    rows.write_text(json.dumps([{"File": "a.wav", "Text": "one"}, {"path": "a.wav", "caption": "uno"}]))
    assert read_captions_file(rows) == {"a.wav": ["one", "uno"]}


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("c.json", "{not json", "not valid JSON"),
        ("c.json", "[1, 2]", "expected an object"),
        ("c.csv", "file,comment\na.wav,x\n", "caption"),
        ("c.csv", "", "empty CSV"),
        ("c.json", "{}", "no captions"),
    ],
)
def test_bad_captions_files_are_clear_errors(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_captions_file(path)


def test_empty_or_missing_folders_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    with pytest.raises(InputError, match="no audio files"):
        folder_entries(tmp_path / "empty")
    with pytest.raises(InputError, match="not a folder"):
        folder_entries(tmp_path / "missing")
    with pytest.raises(InputError, match="captions file"):
        folder_entries(make_sound_folder(tmp_path / "s"), tmp_path / "nope.csv")


def test_manifest_entries_keep_ids_groups_and_pick_splits(tmp_path):
    rows = [
        {"id": "a", "path": "audio/a.flac", "captions": ["x"], "labels": ["dog"], "split": "train", "group": "g1"},
        {"id": "b", "path": "audio/b.flac", "captions": [], "labels": ["cat"], "split": "test"},
    ]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    train = manifest_entries(tmp_path, "train")
    assert [(e["id"], e["group"], e["labels"]) for e in train] == [("a", "g1", ["dog"])]
    assert [e["group"] for e in manifest_entries(tmp_path / "manifest.jsonl", None)] == ["g1", "b"]
    with pytest.raises(InputError, match="no clips in split 'valid'"):
        manifest_entries(tmp_path, "valid")
