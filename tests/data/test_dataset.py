"""CorpusDataset on the fixture corpus: shapes, determinism, held-out pairs, bad clips."""

import json
import warnings

import numpy as np
import pytest
import torch

from tta.data.dataset import CorpusDataset
from tta.errors import InputError


def test_item_shape_and_normalisation(built_corpus):
    ds = CorpusDataset(built_corpus, split="train", clip_seconds=1.0, seed=0)
    item = ds[0]
    assert set(item) == {"audio", "caption", "labels", "id"}
    assert item["audio"].dtype == torch.float32 and item["audio"].shape == (16000,)
    assert abs(float(item["audio"].abs().max()) - 0.5) < 1e-3
    assert abs(float(item["audio"].mean())) < 1e-3
    assert isinstance(item["caption"], str) and item["caption"]


def test_deterministic_for_a_seed_and_epoch(built_corpus):
    kw = dict(split="train", clip_seconds=1.0, mix_prob=0.5, seed=3)
    a, b = CorpusDataset(built_corpus, **kw), CorpusDataset(built_corpus, **kw)
    for i in (0, 5, 17):
        x, y = a[i], b[i]
        assert torch.equal(x["audio"], y["audio"]) and x["caption"] == y["caption"] and x["id"] == y["id"]
    b.set_epoch(1)
    assert any(a[i]["caption"] != b[i]["caption"] or not torch.equal(a[i]["audio"], b[i]["audio"]) for i in range(5))
    c = CorpusDataset(built_corpus, **{**kw, "seed": 4})
    assert any(a[i]["id"] != c[i]["id"] for i in range(10))


def test_mixtures_never_use_held_out_pairs(built_corpus):
    pair = ("dog barking", "rain")
    ds = CorpusDataset(
        built_corpus, clip_seconds=0.5, mix_prob=1.0, augment=False, held_out_pairs=[pair], examples_per_epoch=300
    )
    seen = [tuple(ds[i]["labels"]) for i in range(300)]
    assert all(len(labels) == 2 for labels in seen)
    assert not any(set(labels) == set(pair) for labels in seen)
    assert any("rain" in labels for labels in seen)


def test_speech_and_music_are_capped(built_corpus):
    ds = CorpusDataset(
        built_corpus, clip_seconds=0.5, mix_prob=0.0, augment=False, speech_music_frac=0.1, examples_per_epoch=400
    )
    draws = [ds[i]["labels"][0] for i in range(400)]
    share = sum(d in ("speech", "music") for d in draws) / len(draws)
    assert share < 0.2


def test_eval_split_iterates_clips(built_corpus):
    ds = CorpusDataset(built_corpus, split="test", clip_seconds=1.0, augment=False, mix_prob=0.0)
    assert len(ds) == len(ds.records)
    assert [ds[i]["id"] for i in range(len(ds))] == [r["id"] for r in ds.records]


def test_short_clips_skip_is_counted(built_corpus):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = CorpusDataset(built_corpus, clip_seconds=5.0, short_clips="skip")
    assert ds.skipped["shorter than the crop"] > 0
    assert all(r["duration"] >= 5.0 for r in ds.records)


def test_unreadable_clip_is_reported_and_replaced(built_corpus, tmp_path):
    import shutil

    root = tmp_path / "c"
    shutil.copytree(built_corpus, root)
    records = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    bad = next(r for r in records if r["split"] == "train" and r["labels"] == ["footsteps"])
    (root / bad["path"]).write_bytes(b"")  # zero-length FLAC
    ds = CorpusDataset(root, clip_seconds=0.5, mix_prob=0.0, examples_per_epoch=200)
    with pytest.warns(UserWarning, match="unreadable"):
        items = [ds[i] for i in range(200)]
    assert ds.skipped["unreadable audio"] == 1
    assert all(np.isfinite(it["audio"].numpy()).all() for it in items)
    assert bad["id"] not in {it["id"] for it in items}


def test_missing_corpus_and_bad_arguments_are_input_errors(tmp_path, built_corpus):
    with pytest.raises(InputError):
        CorpusDataset(tmp_path)
    bad = (
        {"split": "training"},
        {"clip_seconds": 0},
        {"mix_prob": 1.5},
        {"short_clips": "pad"},
        {"mix_snr_db": (5, 0)},
    )
    for kwargs in bad:
        with pytest.raises(InputError):
            CorpusDataset(built_corpus, **kwargs)


def test_balance_power_weights_classes_by_size(built_corpus):
    uniform = CorpusDataset(built_corpus, clip_seconds=0.5, speech_music_frac=0.0)
    by_size = CorpusDataset(built_corpus, clip_seconds=0.5, speech_music_frac=0.0, balance_power=1.0)
    events = [k for k, label in enumerate(uniform.labels) if label not in ("speech", "music")]
    sizes = np.array([len(uniform.by_label[uniform.labels[k]]) for k in events], dtype=float)
    assert np.allclose(uniform._class_weights[events], 1.0 / len(events))
    assert np.allclose(by_size._class_weights[events], sizes / sizes.sum())


def test_sequential_examples(built_corpus):
    ds = CorpusDataset(built_corpus, clip_seconds=1.0, mix_prob=1.0, sequence_prob=1.0, examples_per_epoch=30)
    for i in range(30):
        item = ds[i]
        assert item["audio"].shape == (16000,) and len(item["labels"]) == 2
        assert "then" in item["caption"] or "followed by" in item["caption"]


def test_mix_snr_range_sets_levels_and_captions(built_corpus):
    """Faint-background captions come only from mixtures drawn at >= 10 dB; the range is honoured."""
    kw = dict(clip_seconds=1.0, mix_prob=1.0, sequence_prob=0.0, augment=False, examples_per_epoch=40)
    loud = CorpusDataset(built_corpus, mix_snr_db=(0.0, 0.0), **kw)
    quiet = CorpusDataset(built_corpus, mix_snr_db=(20.0, 20.0), **kw)
    assert not any("faint" in loud[i]["caption"] for i in range(40))
    assert any("faint" in quiet[i]["caption"] for i in range(40))
    assert any(not torch.equal(loud[i]["audio"], quiet[i]["audio"]) for i in range(5))


def test_joined_splits_hold_both_and_are_balanced(built_corpus):
    train, other = CorpusDataset(built_corpus, "train"), CorpusDataset(built_corpus, "test")
    both = CorpusDataset(built_corpus, "train+test")  # the fixture has no valid clips
    ids = {r["id"] for r in both.records}
    assert ids == {r["id"] for r in train.records} | {r["id"] for r in other.records}
    assert len(ids) == len(train.records) + len(other.records) and both.balanced and not other.balanced
