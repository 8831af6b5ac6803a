"""The shipped default model (checkpoints/): `TTAPipeline.from_pretrained()` and `tta generate` with no model
argument load it offline and generate audio; the folder is what the model card says it is."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tta.cli import main
from tta.paths import REPO_ROOT

SHIPPED = REPO_ROOT / "checkpoints"


@pytest.fixture(scope="module")
def pipe():
    from tta.pipelines import TTAPipeline

    return TTAPipeline.from_pretrained()


def test_default_pipeline_generates_offline(pipe, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    kw = dict(audio_length_in_s=1.5, num_inference_steps=4, progress=False)
    a = pipe("a dog barking in the rain", seed=3, **kw).audios[0]
    b = pipe("a dog barking in the rain", seed=3, **kw).audios[0]
    c = pipe("a dog barking in the rain", seed=4, **kw).audios[0]
    assert a.shape == (24000,) and np.isfinite(a).all()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    rms = float(np.sqrt(np.mean(a**2)))
    assert 1e-3 < rms and np.abs(a).max() <= 1.0  # audible, not clipped


def test_default_model_folder_matches_the_model_card():
    index = json.loads((SHIPPED / "model_index.json").read_text())
    assert index["_class_name"] == "TTAPipeline" and index["clap"][1] == "minilm-mel"
    scheduler = json.loads((SHIPPED / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == "v_prediction"
    weights = [p for p in SHIPPED.rglob("*") if p.suffix in (".bin", ".ckpt", ".pt", ".pth")]
    assert not weights  # safetensors only
    size = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    assert size < 150 * 2**20
    assert (SHIPPED / "README.md").is_file()


def test_cli_generate_without_a_model_argument(tmp_path, capsys):
    out = tmp_path / "dog.wav"
    assert (
        main(["generate", "dog barking in rain", "-o", str(out), "--steps", "3", "--duration", "1", "--no-progress"])
        == 0
    )
    wav, sr = sf.read(str(out), dtype="float32")
    assert sr == 16000 and wav.shape == (16000,)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["model"] and meta["model_hash"]


def test_shipped_prior_belongs_to_the_shipped_clap(pipe):
    """checkpoints/prior/ loads (built with this CLAP, so not ignored) and maps a prompt onto real audio embeddings:
    its output is closer to its nearest bank entry than the raw text embedding is."""
    assert pipe.prior is not None and pipe.prior.top_k == 64
    text = pipe.clap.encode_text(["a dog barking"])
    mapped = pipe.prior(text)
    bank = pipe.prior.embeddings
    assert (mapped @ bank.T).max() > (text @ bank.T).max()
    assert abs(float(mapped.norm()) - 1.0) < 1e-5


def test_shipped_prior_composes_prompts_that_name_two_sounds(pipe):
    """The shipped prior splits prompts naming two sounds it knows, and keeps one-sound descriptions whole
    (a surface or a place is not a second sound)."""
    assert pipe.prior.max_sources == 2
    prompts = [
        "dog barking in rain",
        "a cat meowing and a dog barking",
        "footsteps on gravel",
        "birds singing in a forest",
    ]
    out = pipe(prompts, audio_length_in_s=0.3, num_inference_steps=1, seed=0, progress=False)
    assert out.sources == [
        ["dog barking", "rain"],
        ["a cat meowing", "a dog barking"],
        ["footsteps on gravel"],
        ["birds singing in a forest"],
    ]
    assert np.abs(out.audios).max() <= 0.98 + 1e-6  # the peak limit holds


def test_shipped_sampling_defaults_are_the_training_configs(pipe):
    """What `tta train ldm` writes into a fresh export is what the shipped folder uses (12 steps, guidance 6)."""
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(OmegaConf.load(REPO_ROOT / "configs" / "train" / "ldm.yaml"))
    index = json.loads((SHIPPED / "model_index.json").read_text())
    assert index["sampling"] == config["sampling_defaults"]
    assert (pipe.default_steps, pipe.default_guidance) == (12, 6.0)


def test_shipped_prior_settings_are_the_builders_defaults(pipe):
    """`tta prior build` with no options rebuilds the shipped prior's settings (temperature 0.03, 64 neighbours,
    found by their captions)."""
    import inspect

    from tta.cli import build_parser
    from tta.models.prior import RetrievalPrior

    args = build_parser().parse_args(["prior", "build"])
    defaults = inspect.signature(RetrievalPrior).parameters
    assert (pipe.prior.temperature, pipe.prior.top_k, pipe.prior.key_weight) == (0.03, 64, 1.0)
    assert defaults["temperature"].default == args.temperature == pipe.prior.temperature
    assert defaults["top_k"].default == args.top_k == pipe.prior.top_k
    assert defaults["key_weight"].default == args.key_weight == pipe.prior.key_weight
    # built from the corpus: every recording has caption keys, text embeddings unlike its audio one
    assert pipe.prior.keys is not None and pipe.prior.keys.shape == pipe.prior.embeddings.shape
    assert float((pipe.prior.keys * pipe.prior.embeddings).sum(-1).max()) < 0.99
