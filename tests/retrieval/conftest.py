"""Fixtures for retrieval: a tiny retrieval-conditioned model folder, a captioned sound folder, its index."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch

from tests.conftest import build_tiny_unet_vae_vocoder
from tests.training.audio_corpus import SR, sound
from tta.sampling.schedulers import AUDIOLDM_SCHEDULER

TOKEN_DIM = 32
TOP_K = 2


def build_tiny_retrieval_unet(latent_dim: int):
    """The tiny UNet of ``configs/model/tiny.yaml`` with one ``cross_attention_dim`` and a random encoder whose
    tokens matter (its value projections are random, not zero)."""
    from omegaconf import OmegaConf

    from tests.conftest import REPO
    from tta.models.retrieval import RetrievalEncoder, RetrievalUNet
    from tta.models.unet import build_unet

    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "model" / "tiny.yaml"))["unet"]
    torch.manual_seed(1)
    unet = build_unet(**{**cfg, "cross_attention_dim": TOKEN_DIM}).eval()
    with torch.no_grad():
        unet.class_embedding.weight.mul_(100.0)
    encoder = RetrievalEncoder(embedding_dim=32, latent_dim=latent_dim, token_dim=TOKEN_DIM, top_k=TOP_K)
    return RetrievalUNet(unet, encoder).eval()


@pytest.fixture(scope="session")
def retrieval_model_dir(tmp_path_factory, clap_dir):
    from tta.models.clap import load_clap
    from tta.pipelines import TTAPipeline

    _, vae, vocoder = build_tiny_unet_vae_vocoder()
    # latent grid: 8 channels x (64 mel bins / VAE factor 4) = 16 bins; mean and std: 256 values
    model = build_tiny_retrieval_unet(latent_dim=256)
    sched = {"_class_name": "DDIMScheduler", **AUDIOLDM_SCHEDULER}
    pipe = TTAPipeline(model, vae, vocoder, load_clap(clap_dir), sched)
    folder = tmp_path_factory.mktemp("models") / "tiny-retrieval"
    pipe.save_pretrained(folder)
    return folder


def write_sound(path, kind: str, seconds: float, seed: int) -> None:
    sf.write(path, sound(kind, seconds, seed), SR)


def make_sound_folder(root):
    """Six recordings in two sub-folders: tones captioned by sidecars, noises by a CSV, one by its name only."""
    (root / "tones").mkdir(parents=True)
    (root / "noise").mkdir()
    for i in range(3):
        write_sound(root / "tones" / f"tone_{i}.wav", "tone", 0.6 + 0.1 * i, i)
        (root / "tones" / f"tone_{i}.txt").write_text(f"a pure tone\na whistle number {i}\n")
    for i in range(2):
        write_sound(root / "noise" / f"hiss{i}.flac", "noise", 0.8, 10 + i)
    write_sound(root / "noise" / "Wind_Gust-03.wav", "noise", 0.7, 20)
    return root


@pytest.fixture
def sound_folder(tmp_path):
    root = make_sound_folder(tmp_path / "sounds")
    captions = tmp_path / "captions.csv"
    captions.write_text("file,caption\nnoise/hiss0.flac,white noise hiss\nhiss1.flac,a hissing steam pipe\n")
    return root, captions


@pytest.fixture(scope="session")
def shared_index(tmp_path_factory, retrieval_model_dir):
    """An index of a sound folder built with the tiny retrieval model (read-only for the tests that use it)."""
    from tta.cli import main

    root = make_sound_folder(tmp_path_factory.mktemp("lib") / "sounds")
    (root / "meta.json").write_text(json.dumps({"noise/hiss0.flac": ["white noise hiss"]}))
    out = root.parent / "index"
    args = ["index", "build", str(root), "-o", str(out), "--model", str(retrieval_model_dir), "--no-progress"]
    assert main([*args, "--captions", str(root / "meta.json"), "--captions-from-names"]) == 0
    return out
