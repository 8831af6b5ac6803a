"""The retrieval index: exact and approximate search against brute force, exclusions, the folder on disk (and its
corruptions), compatibility checks, and ``tta index build`` / ``info`` (incremental rebuilds)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tta.cli import main
from tta.errors import InputError, ModelLoadError
from tta.retrieval import RetrievalIndex


def random_index(n=300, d=16, captioned_every=2, kind="auto", seed=0) -> RetrievalIndex:
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(n, d, generator=g)
    text = torch.randn(n, d, generator=g)
    text[::captioned_every] = 0  # every other entry has no captions
    entries = [{"id": f"e{i}", "path": f"/x/e{i}.wav", "group": f"g{i // 3}", "captions": []} for i in range(n)]
    return RetrievalIndex(entries, audio, text, torch.randn(n, 2 * 2 * 3, generator=g), "fp", (2, 3), kind=kind)


def brute_force(index: RetrievalIndex, queries: torch.Tensor, k: int) -> torch.Tensor:
    sims = F.normalize(queries, dim=-1) @ index.keys().T
    return sims.topk(k, dim=1).indices


def test_keys_are_captions_where_there_are_any_else_audio():
    index = random_index()
    keys = index.keys()
    torch.testing.assert_close(keys[0], index.audio[0])  # uncaptioned
    torch.testing.assert_close(keys[1], F.normalize(index.text[1], dim=0))
    assert index.captioned.tolist()[:4] == [False, True, False, True]


def test_exact_search_equals_brute_force_and_hnsw_finds_nearly_all():
    queries = torch.randn(20, 16, generator=torch.Generator().manual_seed(5))
    exact = random_index(kind="flat")
    found = exact.search(queries, 5)
    assert torch.equal(found.rows, brute_force(exact, queries, 5))
    torch.testing.assert_close(found.scores, (F.normalize(queries, dim=-1) @ exact.keys().T).topk(5).values)
    approx = random_index(kind="hnsw")
    assert approx.info()["faiss"] == "hnsw" and exact.info()["faiss"] == "flat"
    hits = approx.search(queries, 5).rows
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(hits.tolist(), found.rows.tolist())])
    assert recall >= 0.9


def test_excluded_rows_never_come_back_and_missing_ones_are_marked():
    index = random_index(n=6)
    query = index.keys()[:1]
    everything_but_one = set(range(6)) - {4}
    found = index.search(query, 3, exclude=[everything_but_one])
    assert found.rows.tolist() == [[4, -1, -1]] and found.valid.tolist() == [[True, False, False]]
    assert found.scores[0, 1] == float("-inf")
    rows = index.rows_of_groups(["g0"])
    assert rows == [0, 1, 2]
    found = index.search(query, 3, exclude=[set(rows)])
    assert not set(found.rows[0].tolist()) & {0, 1, 2}


def test_bad_queries_and_settings_are_clear_errors():
    index = random_index()
    with pytest.raises(InputError, match="another CLAP"):
        index.search(torch.randn(1, 8), 2)
    with pytest.raises(InputError, match="top_k"):
        index.search(torch.randn(1, 16), 0)
    with pytest.raises(InputError, match="at least one entry"):
        RetrievalIndex([], torch.zeros(0, 4), torch.zeros(0, 4), torch.zeros(0, 4), None, (1, 2))
    with pytest.raises(InputError, match="non-finite"):
        RetrievalIndex([{}], torch.full((1, 4), float("nan")), torch.zeros(1, 4), torch.zeros(1, 4), None, (1, 2))
    with pytest.raises(InputError, match="kind"):
        random_index(kind="ivf")


def test_save_load_round_trip_and_compatibility(tmp_path):
    index = random_index(kind="hnsw")
    index.save(tmp_path / "idx")
    back = RetrievalIndex.load(tmp_path / "idx")
    assert back.entries == index.entries and back.info() == index.info() and back.folder == str(tmp_path / "idx")
    for name in ("audio", "text", "latent"):
        torch.testing.assert_close(getattr(back, name), getattr(index, name))
    q = torch.randn(4, 16)
    assert torch.equal(back.search(q, 3).rows, index.search(q, 3).rows)
    back.check_compatible("fp", 16, (2, 3), "here")
    with pytest.raises(InputError, match="another CLAP"):
        back.check_compatible("other", 16, (2, 3), "here")
    with pytest.raises(InputError, match="16-d"):
        back.check_compatible("fp", 512, (2, 3), "here")
    with pytest.raises(InputError, match="latents"):
        back.check_compatible("fp", 16, (8, 16), "here")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "index.json").unlink(), "cannot read"),
        (lambda f: (f / "index.json").write_text("{broken"), "cannot read"),
        (lambda f: (f / "index.json").write_text('{"format": "something else"}'), "not a tta retrieval index"),
        (lambda f: _edit_info(f, version=99), "version 99"),
        (lambda f: _edit_info(f, entries=3), "says 3 entries"),
        (lambda f: (f / "vectors.safetensors").write_bytes(b"\0" * 64), "index vectors"),
        (lambda f: (f / "keys.faiss").write_bytes(b"garbage"), "FAISS index"),
        (lambda f: (f / "entries.jsonl").write_text("{no json\n"), "entries.jsonl"),
        (lambda f: shutil.rmtree(f), "no retrieval index"),
    ],
)
def test_a_damaged_index_is_a_clear_error(tmp_path, damage, message):
    random_index(n=20).save(tmp_path / "idx")
    damage(tmp_path / "idx")
    with pytest.raises(ModelLoadError, match=message):
        RetrievalIndex.load(tmp_path / "idx")


def _edit_info(folder, **changes):
    info = json.loads((folder / "index.json").read_text())
    (folder / "index.json").write_text(json.dumps({**info, **changes}))


def test_build_embeds_with_the_models_clap_and_vae(shared_index, retrieval_model_dir):
    from tta.audio.io import load_audio
    from tta.evaluation.clap_zero_shot import window_embedding
    from tta.pipelines import TTAPipeline
    from tta.retrieval.build import latent_summary

    index = RetrievalIndex.load(shared_index)
    assert len(index) == 6 and int(index.captioned.sum()) == 6  # sidecars, the JSON file, and a file name
    pipe = TTAPipeline.from_pretrained(retrieval_model_dir)
    row = next(i for i, e in enumerate(index.entries) if e["id"] == "noise/hiss0.flac")
    assert index.entries[row]["captions"] == ["white noise hiss"]
    wav = torch.from_numpy(load_audio(index.entries[row]["path"]))
    with torch.no_grad():  # the tiny HF CLAP's feature extractor crops at random: near, not equal
        embedding = window_embedding(pipe.clap, wav, 5.0, 4)
    assert float(index.audio[row] @ embedding) > 0.99
    tones = [i for i, e in enumerate(index.entries) if e["id"].startswith("tones/")]
    assert float(index.audio[row] @ embedding) > float((index.audio[tones] @ embedding).max())
    with torch.no_grad():
        text = F.normalize(pipe.clap.encode_text(["white noise hiss"]).float(), dim=-1)[0]
    torch.testing.assert_close(index.text[row], text, atol=1e-5, rtol=0)
    # the latent summary is the per-(channel, bin) mean and std over time of the VAE latents
    summary = latent_summary(pipe, wav)
    torch.testing.assert_close(index.latent[row], summary)
    mel = pipe.mel_frontend()(wav)
    frames = -(-mel.shape[0] // 4) * 4
    mel = torch.nn.functional.pad(mel, (0, 0, 0, frames - mel.shape[0]), value=float(np.log(1e-5)))
    z = pipe.encode_mel(mel[None, None])[0]
    torch.testing.assert_close(summary[:128].view(8, 16), z.mean(1))
    torch.testing.assert_close(summary[128:].view(8, 16), z.std(1, unbiased=False))


def test_rebuild_re_embeds_only_what_changed(tmp_path, sound_folder, retrieval_model_dir, capsys):
    root, captions = sound_folder
    out = tmp_path / "idx"
    args = ["index", "build", str(root), "-o", str(out), "--model", str(retrieval_model_dir), "--no-progress"]
    assert main([*args, "--captions", str(captions)]) == 0
    first = RetrievalIndex.load(out)
    assert "embedded 6, reused 0, removed 0" in capsys.readouterr().out
    assert main([*args, "--captions", str(captions)]) == 0
    assert "embedded 0, reused 6, removed 0" in capsys.readouterr().out
    # one file changed, one removed, one added; a sidecar caption edited (text only, no re-embedding)
    from tests.retrieval.conftest import write_sound

    write_sound(root / "tones" / "tone_0.wav", "noise", 0.5, 99)
    os.utime(root / "tones" / "tone_0.wav", ns=(1, 1))
    (root / "noise" / "hiss1.flac").unlink()
    write_sound(root / "noise" / "new.wav", "tone", 0.5, 7)
    (root / "tones" / "tone_2.txt").write_text("a sine wave\n")
    assert main([*args, "--captions", str(captions)]) == 0
    assert "embedded 2, reused 4, removed 1" in capsys.readouterr().out
    second = RetrievalIndex.load(out)
    ids = [e["id"] for e in second.entries]
    assert "noise/hiss1.flac" not in ids and "noise/new.wav" in ids and len(second) == 6
    old = {e["id"]: i for i, e in enumerate(first.entries)}
    for i, e in enumerate(second.entries):
        if e["id"] in ("tones/tone_1.wav", "noise/hiss0.flac"):  # untouched: same vectors
            torch.testing.assert_close(second.audio[i], first.audio[old[e["id"]]])
        if e["id"] == "tones/tone_0.wav":
            assert not torch.allclose(second.audio[i], first.audio[old[e["id"]]])
        if e["id"] == "tones/tone_2.wav":
            assert e["captions"] == ["a sine wave"]


def test_cli_errors_and_info(tmp_path, shared_index, retrieval_model_dir, capsys):
    model = ["--model", str(retrieval_model_dir), "--no-progress"]
    (tmp_path / "empty").mkdir()
    assert main(["index", "build", str(tmp_path / "empty"), "-o", str(tmp_path / "i"), *model]) == 2
    assert "no audio files" in capsys.readouterr().err
    assert main(["index", "build", str(tmp_path / "missing"), "-o", str(tmp_path / "i"), *model]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    assert main(["index", "build", str(shared_index.parent / "sounds"), "-o", str(tmp_path / "busy"), *model]) == 2
    assert "not a tta index" in capsys.readouterr().err and (tmp_path / "busy" / "keep.txt").is_file()
    broken = tmp_path / "silent"
    broken.mkdir()
    (broken / "bad.wav").write_bytes(b"RIFF not really")
    import soundfile as sf

    sf.write(broken / "quiet.wav", np.zeros(8000, np.float32), 16000)
    assert main(["index", "build", str(broken), "-o", str(tmp_path / "j"), *model]) == 2
    err = capsys.readouterr().err
    assert "none of the 2 recordings could be indexed" in err
    assert main(["index", "info", str(shared_index)]) == 0
    out = capsys.readouterr().out
    assert "6 (6 captioned, 6 source recordings)" in out and "32-d" in out and "flat" in out
    assert main(["index", "info", str(shared_index), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 6
    assert main(["index", "info", str(tmp_path / "nothing")]) == 2
