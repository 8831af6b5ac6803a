"""Fixtures of the training tests."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.training.audio_corpus import make_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A corpus root with 2 classes, 8 FLAC clips (train 6, valid 2) and a manifest."""
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def components(tmp_path_factory, clap_dir):
    """A folder with a tiny VAE (4 latent channels, factor 2), ISTFT vocoder and CLAP (32-d)."""
    from tta.models.vae import build_vae
    from tta.models.vocoder import build_vocoder

    folder = tmp_path_factory.mktemp("components")
    torch.manual_seed(0)
    vae = build_vae(block_out_channels=[8, 16], layers_per_block=1, latent_channels=4, norm_num_groups=4)
    vae.register_to_config(scaling_factor=0.7)
    vae.save_pretrained(str(folder / "vae"), safe_serialization=True)
    build_vocoder("istft", channels=16, hidden_channels=32, num_blocks=1).save_pretrained(str(folder / "vocoder"))
    shutil.copytree(clap_dir, folder / "clap")
    return folder
