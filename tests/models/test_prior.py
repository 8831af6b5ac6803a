"""The retrieval prior: its maths against a direct computation, its files, and how a model folder carries it."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from tta.cli import main
from tta.errors import InputError, ModelLoadError
from tta.models.prior import RetrievalPrior
from tta.pipelines import TTAPipeline


def _bank(n=40, d=16, seed=0):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_output_is_the_mean_of_the_nearest_entries():
    bank = _bank()
    query = F.normalize(torch.randn(3, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    out = RetrievalPrior(bank, top_k=4, temperature=0.0)(query)
    for q, o in zip(query, out):
        nearest = np.argsort(-(bank @ q).numpy())[:4]
        expected = F.normalize(bank[nearest].mean(0), dim=0)
        torch.testing.assert_close(o, expected)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))


def test_top1_returns_a_bank_entry_and_text_weight_one_the_text():
    bank = _bank()
    query = F.normalize(bank[7] + 0.05 * torch.randn(16, generator=torch.Generator().manual_seed(2)), dim=0)[None]
    torch.testing.assert_close(RetrievalPrior(bank, top_k=1)(query)[0], bank[7])  # any temperature
    torch.testing.assert_close(RetrievalPrior(bank, top_k=5, text_weight=1.0)(query), query)


def test_softmax_weights_follow_the_similarities():
    bank = _bank()
    query = F.normalize(torch.randn(1, 16, generator=torch.Generator().manual_seed(3)), dim=-1)
    sims = (query @ bank.T)[0]
    weights = torch.softmax(sims / 0.1, 0)  # all N entries
    expected = F.normalize((weights[:, None] * bank).sum(0), dim=0)
    torch.testing.assert_close(RetrievalPrior(bank, top_k=len(bank), temperature=0.1)(query)[0], expected)
    blend = RetrievalPrior(bank, top_k=len(bank), temperature=0.1, text_weight=0.5)(query)[0]
    torch.testing.assert_close(blend, F.normalize(0.5 * query[0] + 0.5 * expected, dim=0))


def test_caption_keys_choose_the_neighbours_and_the_audio_is_averaged():
    bank, keys = _bank(), _bank(seed=9)
    query = F.normalize(keys[7] + 0.05 * torch.randn(16, generator=torch.Generator().manual_seed(4)), dim=0)[None]
    torch.testing.assert_close(RetrievalPrior(bank, top_k=1, keys=keys)(query)[0], bank[7])
    # key_weight 0: the keys are ignored, as without them
    torch.testing.assert_close(
        RetrievalPrior(bank, top_k=3, keys=keys, key_weight=0.0)(query), RetrievalPrior(bank, top_k=3)(query)
    )
    # a blend of the two similarities, softmax over all entries, against a direct computation
    prior = RetrievalPrior(bank, top_k=len(bank), temperature=0.1, keys=keys, key_weight=0.75)
    scores = 0.75 * (query @ keys.T)[0] + 0.25 * (query @ bank.T)[0]
    expected = F.normalize((torch.softmax(scores / 0.1, 0)[:, None] * bank).sum(0), dim=0)
    torch.testing.assert_close(prior(query)[0], expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(top_k=0), "top_k"),
        (dict(top_k=2.5), "top_k"),
        (dict(temperature=-1.0), "temperature"),
        (dict(text_weight=1.5), "text_weight"),
        (dict(key_weight=-0.1), "key_weight"),
        (dict(keys=torch.ones(3, 16)), "keys must match"),
        (dict(keys=torch.full((40, 16), float("nan"))), "non-finite"),
    ],
)
def test_bad_settings_are_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        RetrievalPrior(_bank(), **kwargs)
    with pytest.raises(InputError, match="non-empty"):
        RetrievalPrior(torch.zeros(0, 16))
    with pytest.raises(InputError, match=r"\[B, 16\]"):
        RetrievalPrior(_bank())(torch.ones(2, 8))


def test_save_load_round_trip_and_corrupt_files(tmp_path):
    prior = RetrievalPrior(_bank(), top_k=3, temperature=0.05, text_weight=0.25)
    prior.save_pretrained(tmp_path / "p", clap_fingerprint="abc")
    back = RetrievalPrior.from_pretrained(tmp_path / "p")
    assert back.config == prior.config and back.clap_fingerprint == "abc"
    torch.testing.assert_close(back.embeddings, prior.embeddings, atol=1e-3, rtol=0)  # float16 on disk
    weights = tmp_path / "p" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        RetrievalPrior.from_pretrained(tmp_path / "p")
    prior.save_pretrained(tmp_path / "q")
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    assert config["caption_keys"] is False and RetrievalPrior.from_pretrained(tmp_path / "q").keys is None
    (tmp_path / "q" / "config.json").write_text(json.dumps({**config, "top_k": 0}))
    with pytest.raises(ModelLoadError, match="config.json: top_k"):
        RetrievalPrior.from_pretrained(tmp_path / "q")
    # a bank with caption keys keeps them; a config that promises keys the weights lack is an error
    keyed = RetrievalPrior(_bank(), keys=_bank(seed=9), key_weight=0.5)
    keyed.save_pretrained(tmp_path / "k")
    back = RetrievalPrior.from_pretrained(tmp_path / "k")
    assert back.config == keyed.config and back.config["key_weight"] == 0.5
    torch.testing.assert_close(back.keys, keyed.keys, atol=1e-3, rtol=0)
    (tmp_path / "q" / "config.json").write_text(json.dumps({**config, "caption_keys": True}))
    with pytest.raises(ModelLoadError, match="caption keys"):
        RetrievalPrior.from_pretrained(tmp_path / "q")


@pytest.fixture(scope="module")
def prior_dir(tta_model_dir, tmp_path_factory):
    """The tiny model saved again with a prior over random 'audio' embeddings of its CLAP's size."""
    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    d = pipe.clap.embedding_dim
    pipe.prior = RetrievalPrior(_bank(20, d), top_k=2, temperature=0.0)
    folder = tmp_path_factory.mktemp("prior") / "model"
    pipe.save_pretrained(folder)
    return folder


def test_the_pipeline_conditions_through_the_prior_but_never_the_empty_text(prior_dir):
    pipe = TTAPipeline.from_pretrained(prior_dir)
    assert pipe.prior is not None and pipe.prior.top_k == 2
    from tta.pipelines.conditioning import encode_prompts, resolve_conditioning

    cond, uncond, sources = encode_prompts(resolve_conditioning(pipe), ["rain"], [""], 1, 3.0, pipe.device)
    assert sources == [["rain"]]
    torch.testing.assert_close(cond, pipe.prior(pipe.clap.encode_text(["rain"])))
    torch.testing.assert_close(uncond, pipe.clap.encode_text([""]))
    kw = dict(audio_length_in_s=0.3, seed=5, num_inference_steps=3, progress=False)
    with_prior = pipe("rain", **kw).audios
    without = pipe("rain", use_prior=False, **kw).audios
    assert not np.array_equal(with_prior, without)
    pipe.prior = None
    np.testing.assert_array_equal(without, pipe("rain", **kw).audios)


def test_a_prior_of_another_clap_is_ignored_with_a_warning(prior_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(prior_dir, folder)
    config = json.loads((folder / "prior" / "config.json").read_text())
    assert config["clap_fingerprint"]  # written by save_pretrained
    (folder / "prior" / "config.json").write_text(json.dumps({**config, "clap_fingerprint": "0" * 16}))
    with pytest.warns(UserWarning, match="another CLAP"):
        assert TTAPipeline.from_pretrained(folder).prior is None


def test_saving_without_a_prior_keeps_the_folders(prior_dir, tmp_path):
    """Re-exporting a model into a folder that has a prior keeps it (and it still loads: same CLAP)."""
    folder = tmp_path / "model"
    shutil.copytree(prior_dir, folder)
    pipe = TTAPipeline.from_pretrained(folder)
    pipe.prior = None
    pipe.save_pretrained(folder)
    assert TTAPipeline.from_pretrained(folder).prior is not None


def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def test_cli_builds_a_prior_from_a_folder_of_sounds(tta_model_dir, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(tta_model_dir, folder)
    sounds = tmp_path / "sounds"
    (sounds / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(sounds / "sub" / f"s{i}.wav", 0.3 * rng.standard_normal(8000).astype(np.float32), 16000)
    (sounds / "broken.wav").write_bytes(b"not audio")
    sf.write(sounds / "silent.wav", np.zeros(4000, np.float32), 16000)
    _seed()  # the tiny HF CLAP's feature extractor draws random crops: same draws for s0 here and below
    (sounds / "sub" / "s1.txt").write_text("rain on a tin roof\n\nheavy rain\n")  # s1's captions
    code = main(["prior", "build", "--model", str(folder), "--audio", str(sounds), "--top-k", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "3 recordings embedded (1 with captions), 2 skipped" in out and "broken.wav" in out
    pipe = TTAPipeline.from_pretrained(folder)
    assert pipe.prior.embeddings.shape == (3, pipe.clap.embedding_dim) and pipe.prior.top_k == 2
    # s1 is found by its captions' mean text embedding; s0 and s2, without captions, by their audio
    with torch.no_grad():
        text = pipe.clap.encode_text(["rain on a tin roof", "heavy rain"])
    torch.testing.assert_close(pipe.prior.keys[1], F.normalize(text.mean(0), dim=0), atol=2e-3, rtol=0)
    torch.testing.assert_close(pipe.prior.keys[[0, 2]], pipe.prior.embeddings[[0, 2]])
    # the bank holds the CLAP's own embeddings of the clips
    from tta.audio.io import load_audio
    from tta.evaluation.clap_zero_shot import window_embedding

    wav = torch.from_numpy(load_audio(sounds / "sub" / "s0.wav"))
    _seed()
    with torch.no_grad():
        expected = window_embedding(pipe.clap, wav)
    assert (pipe.prior.embeddings @ expected).max() > 0.999


def test_cli_errors_before_loading(tta_model_dir, tmp_path, capsys):
    def error(*argv):
        assert main(["prior", "build", "--model", str(tta_model_dir), *argv]) == 2
        return capsys.readouterr().err

    assert "no audio files" in error("--audio", str(tmp_path))
    assert "tta data build" in error("--corpus", str(tmp_path))
    (tmp_path / "a.wav").write_bytes(b"x")
    assert "top_k" in error("--audio", str(tmp_path), "--top-k", "0")
    assert not (tta_model_dir / "prior").exists()


def test_generate_records_the_prior_and_regenerates_without_it(prior_dir, tmp_path):
    base = ["generate", "rain", "--model", str(prior_dir), "--seed", "3", "--steps", "2", "--duration", "0.3"]
    assert main([*base, "-o", str(tmp_path / "on.wav"), "--no-progress"]) == 0
    assert main([*base, "-o", str(tmp_path / "off.wav"), "--no-prior", "--no-progress"]) == 0
    on = json.loads((tmp_path / "on.json").read_text())
    off = json.loads((tmp_path / "off.json").read_text())
    assert on["prior"] is True and off["prior"] is False
    assert not np.array_equal(sf.read(tmp_path / "on.wav")[0], sf.read(tmp_path / "off.wav")[0])
    again = tmp_path / "again.wav"
    assert main(["generate", "--from-sidecar", str(tmp_path / "off.json"), "-o", str(again), "--no-progress"]) == 0
    np.testing.assert_array_equal(sf.read(again)[0], sf.read(tmp_path / "off.wav")[0])


def test_cli_builds_from_a_corpus_split(tta_model_dir, tmp_path, capsys):
    from tests.training.audio_corpus import make_corpus

    (tmp_path / "corpus").mkdir()
    corpus = make_corpus(tmp_path / "corpus")  # 6 train clips and 2 valid clips
    folder = tmp_path / "model"
    shutil.copytree(tta_model_dir, folder)
    assert main(["prior", "build", "--model", str(folder), "--corpus", str(corpus), "--no-progress"]) == 0
    assert "6 recordings embedded (6 with captions), 0 skipped" in capsys.readouterr().out
    pipe = TTAPipeline.from_pretrained(folder)
    assert pipe.prior.embeddings.shape[0] == 6 and pipe.prior.key_weight == 1.0
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    with torch.no_grad():  # the keys are the manifest captions' text embeddings, in manifest order
        text = pipe.clap.encode_text([r["captions"][0] for r in train])
    torch.testing.assert_close(pipe.prior.keys, text, atol=2e-3, rtol=0)
    argv = ["prior", "build", "--model", str(folder), "--corpus", str(corpus), "--split", "train+valid"]
    assert main([*argv, "--no-progress"]) == 0
    assert TTAPipeline.from_pretrained(folder).prior.embeddings.shape[0] == 8
