"""Generating with a retrieval index: the pipeline, ``tta generate`` / ``tta edit`` with ``--retrieval --top-k``
(sidecars list the clips retrieved and regenerate exactly), and the errors for indexes that do not fit."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tests.retrieval.conftest import TOP_K
from tta.cli import main
from tta.errors import InputError
from tta.retrieval import RetrievalIndex

FAST = ["--steps", "2", "--duration", "0.5", "--no-progress", "--seed", "3"]


@pytest.fixture(scope="module")
def pipe(retrieval_model_dir):
    from tta.pipelines import TTAPipeline

    return TTAPipeline.from_pretrained(retrieval_model_dir)


def test_the_index_conditions_generation_and_is_reported(pipe, shared_index):
    kw = dict(audio_length_in_s=0.5, num_inference_steps=2, seed=0, progress=False)
    plain = pipe("a pure tone", **kw)
    assert plain.retrieved is None and plain.settings["retrieval"] is None
    found = pipe(["a pure tone", "white noise hiss"], retrieval=shared_index, **kw)
    assert found.settings["top_k"] == TOP_K and found.settings["retrieval"] == str(shared_index.resolve())
    assert np.abs(found.audios[0] - plain.audios[0]).max() > 1e-4  # neighbours change the sound
    index = RetrievalIndex.load(shared_index)
    with torch.no_grad():
        query = pipe.clap.encode_text(["a pure tone"])
    expected = [index.entries[r]["id"] for r in index.search(query, TOP_K).rows[0].tolist()]
    first = found.retrieved[0]
    assert [part["text"] for part in first] == ["a pure tone"]
    assert [clip["id"] for clip in first[0]["clips"]] == expected
    assert all(clip["id"].startswith("tones/") for clip in first[0]["clips"])
    assert found.retrieved[1][0]["clips"][0]["id"] == "noise/hiss0.flac"
    again = pipe("a pure tone", retrieval=index, **kw)  # a loaded index works as its folder does
    np.testing.assert_allclose(again.audios[0], found.audios[0], atol=1e-5)  # alone vs in a batch of two
    one = pipe("a pure tone", retrieval=index, top_k=1, **kw)
    assert len(one.retrieved[0][0]["clips"]) == 1 and np.abs(one.audios[0] - found.audios[0]).max() > 1e-5
    many = pipe("a pure tone", num_waveforms_per_prompt=2, retrieval=index, top_k=5, **kw)
    assert len(many.retrieved) == 2 and len(many.retrieved[1][0]["clips"]) == 5
    edited = pipe.edit(plain.audios[0], "white noise hiss", sample_rate=16000, progress=False, seed=0, retrieval=index)
    assert edited.retrieved[0][0]["clips"][0]["id"] == "noise/hiss0.flac"
    with pytest.raises(InputError, match="top_k"):
        pipe("a pure tone", retrieval=index, top_k=0, **kw)
    with pytest.raises(InputError, match="top_k needs a retrieval index"):
        pipe("a pure tone", top_k=2, **kw)
    np.testing.assert_array_equal(pipe("a pure tone", **kw).audios, plain.audios)  # nothing was left set


def test_indexes_that_do_not_fit_are_clear_errors(pipe, shared_index, tiny_pipe, tmp_path):
    kw = dict(audio_length_in_s=0.5, num_inference_steps=2, seed=0, progress=False)
    with pytest.raises(InputError, match="can use no retrieval index"):
        tiny_pipe("a dog", retrieval=shared_index, **kw)
    other = tmp_path / "other"
    shutil.copytree(shared_index, other)
    info = json.loads((other / "index.json").read_text())
    (other / "index.json").write_text(json.dumps({**info, "clap_fingerprint": "0123456789abcdef"}))
    with pytest.raises(InputError, match="another CLAP"):
        pipe("a dog", retrieval=other, **kw)
    index = RetrievalIndex.load(shared_index)
    index.latent_shape = (4, 8)
    with pytest.raises(InputError, match="latents"):
        pipe("a dog", retrieval=index, **kw)
    with pytest.raises(InputError, match="RetrievalIndex or its folder"):
        pipe("a dog", retrieval=3, **kw)


def test_generate_cli_writes_the_retrieved_clips_and_regenerates_them(retrieval_model_dir, shared_index, tmp_path):
    out = tmp_path / "out"
    model = ["--model", str(retrieval_model_dir)]
    args = ["generate", "white noise hiss", "-o", str(out), *model, *FAST, "--retrieval", str(shared_index)]
    assert main([*args, "--top-k", "1"]) == 0
    wav = next(out.glob("*.wav"))
    sidecar = json.loads(wav.with_suffix(".json").read_text())
    assert sidecar["retrieval"] == str(shared_index.resolve()) and sidecar["top_k"] == 1
    assert sidecar["retrieved"] == [
        {
            "text": "white noise hiss",
            "clips": [
                {
                    "id": "noise/hiss0.flac",
                    "path": str((shared_index.parent / "sounds" / "noise" / "hiss0.flac").resolve()),
                    "captions": ["white noise hiss"],
                    "score": pytest.approx(1.0, abs=1e-3),
                }
            ],
        }
    ]
    regen = tmp_path / "regen.wav"
    assert main(["generate", "--from-sidecar", str(wav.with_suffix(".json")), "-o", str(regen), "--no-progress"]) == 0
    import soundfile as sf

    np.testing.assert_array_equal(sf.read(regen)[0], sf.read(wav)[0])
    plain = tmp_path / "plain"
    assert main(["generate", "white noise hiss", "-o", str(plain), *model, *FAST]) == 0
    assert "retrieved" not in json.loads(next(plain.glob("*.json")).read_text())
    assert not np.array_equal(sf.read(next(plain.glob("*.wav")))[0], sf.read(wav)[0])


def test_cli_retrieval_errors(retrieval_model_dir, tta_model_dir, shared_index, tmp_path, capsys):
    out = ["-o", str(tmp_path / "o")]
    assert main(["generate", "a", *out, "--model", str(retrieval_model_dir), *FAST, "--top-k", "2"]) == 2
    assert "--top-k needs --retrieval" in capsys.readouterr().err
    args = ["generate", "a", *out, "--model", str(retrieval_model_dir), *FAST, "--retrieval", str(tmp_path / "no")]
    assert main(args) == 2
    assert "no retrieval index" in capsys.readouterr().err
    args = ["generate", "a", *out, "--model", str(tta_model_dir), *FAST, "--retrieval", str(shared_index)]
    assert main(args) == 2
    assert "can use no retrieval index" in capsys.readouterr().err


def test_edit_cli_records_the_retrieval(retrieval_model_dir, shared_index, tmp_path):
    from tests.retrieval.conftest import write_sound

    clip = tmp_path / "in.wav"
    write_sound(clip, "tone", 0.5, 1)
    out = tmp_path / "edited.wav"
    args = [
        "edit",
        "style",
        str(clip),
        "--prompt",
        "white noise hiss",
        "-o",
        str(out),
        "--model",
        str(retrieval_model_dir),
    ]
    assert main([*args, "--steps", "2", "--no-progress", "--retrieval", str(shared_index)]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["top_k"] == TOP_K and sidecar["retrieved"][0]["clips"][0]["id"] == "noise/hiss0.flac"


def test_demo_generate_with_the_index(pipe, shared_index):
    from tta.demo.handlers import run_generate

    index = RetrievalIndex.load(shared_index)
    result = run_generate(pipe, "white noise hiss", duration=0.5, steps=2, seed=1, retrieval=index, top_k=1)
    assert [clip["id"] for clip in result.settings["retrieved"][0]["clips"]] == ["noise/hiss0.flac"]
    assert f"--retrieval {shared_index.resolve()} --top-k 1" in result.cli
    plain = run_generate(pipe, "white noise hiss", duration=0.5, steps=2, seed=1)
    assert "retrieved" not in plain.settings and not np.array_equal(plain.audio, result.audio)


def test_an_index_extends_the_prior_of_any_model_for_one_call(pipe, tiny_pipe):
    from tta.models.prior import RetrievalPrior
    from tta.pipelines.conditioning import resolve_conditioning

    g = torch.Generator().manual_seed(0)
    entries = [{"id": f"e{i}", "path": f"/x/e{i}.wav"} for i in range(4)]
    audio, text = torch.randn(4, 32, generator=g), torch.randn(4, 32, generator=g)
    index = RetrievalIndex(entries, audio, text, torch.randn(4, 256, generator=g), None, (8, 16))
    own = RetrievalPrior(torch.cat([torch.randn(3, 32, generator=g), audio[:2]]), top_k=1, max_sources=1)
    for model in (pipe, tiny_pipe):  # a retrieval model, and a plain one that only has a prior
        model.prior = own
        try:
            cond = resolve_conditioning(model, index)
            bank = cond.prior.embeddings
            assert cond.prior is not own and bank.shape[0] == 5 + 2  # the two already in the bank not repeated
            torch.testing.assert_close(bank[5:], index.audio[2:], atol=1e-6, rtol=0)
            torch.testing.assert_close(cond.prior.keys[5:], index.keys()[2:])
            torch.testing.assert_close(cond.prior.keys[:5], own.embeddings)  # the bank's own keys: its audio
            assert cond.prior.config == own.config and model.prior is own  # the model's own prior is untouched
            torch.testing.assert_close(cond.prior(text[3:4])[0], index.audio[3], atol=1e-5, rtol=0)
            if model is tiny_pipe:
                assert cond.top_k is None  # no neighbours for a plain UNet
                out = model("a dog", audio_length_in_s=0.5, num_inference_steps=2, seed=0, progress=False)
                assert out.retrieved is None
            if model is pipe:  # neighbours only
                cond = resolve_conditioning(model, index, extend_prior=False)
                assert cond.prior is own and cond.top_k == TOP_K
                assert resolve_conditioning(model, index, use_prior=False).prior is None
            else:
                for kw in ({"extend_prior": False}, {"use_prior": False}):
                    with pytest.raises(InputError, match="can use no retrieval index"):
                        resolve_conditioning(model, index, **kw)
        finally:
            model.prior = None
