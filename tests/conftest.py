"""Shared fixtures: tiny random models built offline under a fixed seed.

* ``tiny_tokenizer_dir``: a RoBERTa tokenizer trained with the ``tokenizers`` library on a few sentences.
* ``clap_dir``: a tiny random transformers ``ClapModel`` folder (text + audio towers, tokenizer, feature extractor).
* ``tta_model_dir``: a tiny random tta model folder (``TTAPipeline.save_pretrained``) whose CLAP is ``clap_dir``'s.
* ``audioldm_dir``: a tiny random diffusers ``AudioLDMPipeline`` folder (``save_pretrained``).

Builders are plain functions (``build_tiny_*``) so tests can make variants.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
import torch

from tta.sampling.schedulers import AUDIOLDM_SCHEDULER

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
CLAP_DIM = 32  # the tiny UNet's projection_class_embeddings_input_dim
MAX_TEXT_LEN = 77

SENTENCES = [
    "a dog barks in the rain",
    "birds sing at dawn in a forest",
    "a car engine starts and drives away",
    "people talk in a busy cafe while cups clink",
    "thunder rumbles over the sea and waves crash",
    "a piano plays a slow melody",
    "footsteps on gravel, wind blowing",
    "a cat meows twice",
]


def build_tiny_tokenizer(folder: Path):
    """Train a byte-level BPE on a few sentences and wrap it as a ``RobertaTokenizerFast`` saved in ``folder``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        SENTENCES * 4, vocab_size=300, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    bpe.save_model(str(folder))
    files = {"vocab": str(folder / "vocab.json"), "merges": str(folder / "merges.txt")}
    if "vocab_file" in inspect.signature(RobertaTokenizerFast.__init__).parameters:  # transformers < 5
        files = {"vocab_file": files["vocab"], "merges_file": files["merges"]}
    tok = RobertaTokenizerFast(**files, model_max_length=MAX_TEXT_LEN)
    tok.save_pretrained(str(folder))
    return tok


def _text_config_kwargs(vocab_size: int) -> dict:
    return {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": MAX_TEXT_LEN + 2,
        "projection_dim": CLAP_DIM,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
    }


def build_tiny_clap_text(tokenizer):
    """A tiny random ``ClapTextModelWithProjection`` (diffusers AudioLDM's text encoder), in eval mode."""
    from transformers import ClapTextConfig, ClapTextModelWithProjection

    torch.manual_seed(0)
    return ClapTextModelWithProjection(ClapTextConfig(**_text_config_kwargs(len(tokenizer)))).eval()


def build_tiny_clap_model(tokenizer):
    """A tiny random full ``ClapModel`` (text + HTSAT audio tower) and its feature extractor."""
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig

    torch.manual_seed(0)
    audio = ClapAudioConfig(
        window_size=4,
        num_mel_bins=16,
        spec_size=64,
        patch_size=4,
        patch_stride=(4, 4),
        depths=[1, 1],
        num_attention_heads=[2, 2],
        patch_embeds_hidden_size=16,
        hidden_size=32,
        projection_dim=CLAP_DIM,
        enable_fusion=False,
    )
    config = ClapConfig(
        text_config=ClapTextConfig(**_text_config_kwargs(len(tokenizer))).to_dict(),
        audio_config=audio.to_dict(),
        projection_dim=CLAP_DIM,
    )
    model = ClapModel(config).eval()
    fe = ClapFeatureExtractor(feature_size=16, sampling_rate=48000, max_length_s=1, truncation="rand_trunc")
    return model, fe


def build_tiny_unet_vae_vocoder():
    """The tiny UNet, VAE and vocoder of ``configs/model/tiny.yaml``, seeded, in eval mode."""
    from omegaconf import OmegaConf

    from tta.models.unet import build_unet
    from tta.models.vae import build_vae
    from tta.models.vocoder import build_vocoder

    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "model" / "tiny.yaml"))
    torch.manual_seed(0)
    unet = build_unet(**cfg["unet"]).eval()
    vae = build_vae(**cfg["vae"]).eval()
    vocoder = build_vocoder(**cfg["vocoder"]).eval()
    # A random tiny UNet barely hears its condition: scale the CLAP projection so that prompts matter.
    with torch.no_grad():
        unet.class_embedding.weight.mul_(100.0)
        # ... and make the random vocoder audible: its init (std 0.01) leaves ~1e-5 of signal, below 16-bit
        # resolution. Unit-gain convolutions keep the signal's scale through the stack.
        for module in vocoder.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                fan_in = (
                    module.weight[0].numel() if isinstance(module, torch.nn.Conv1d) else module.weight[:, 0].numel()
                )
                torch.nn.init.normal_(module.weight, std=fan_in**-0.5)
        vocoder.conv_post.weight.mul_(10.0)
    return unet, vae, vocoder


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    build_tiny_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def clap_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    from transformers import AutoTokenizer

    from tta.models.clap.hf import HFClap

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    model, fe = build_tiny_clap_model(tok)
    folder = tmp_path_factory.mktemp("clap")
    HFClap(model, tok, fe).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tta_model_dir(tmp_path_factory, clap_dir) -> Path:
    """A tiny random tta model folder (full CLAP, so re-ranking works)."""
    from tta.models.clap import load_clap
    from tta.pipelines import TTAPipeline

    unet, vae, vocoder = build_tiny_unet_vae_vocoder()
    pipe = TTAPipeline(unet, vae, vocoder, load_clap(clap_dir), {"_class_name": "DDIMScheduler", **AUDIOLDM_SCHEDULER})
    folder = tmp_path_factory.mktemp("models") / "tiny-tta"
    pipe.save_pretrained(folder)
    return folder


def build_audioldm_pipeline(tokenizer_dir: Path):
    """A tiny random diffusers ``AudioLDMPipeline`` with the same UNet/VAE/vocoder as the tta fixture."""
    from diffusers import AudioLDMPipeline, DDIMScheduler
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    unet, vae, vocoder = build_tiny_unet_vae_vocoder()
    return AudioLDMPipeline(
        vae=vae,
        text_encoder=build_tiny_clap_text(tok),
        tokenizer=tok,
        unet=unet,
        scheduler=DDIMScheduler(**AUDIOLDM_SCHEDULER),
        vocoder=vocoder,
    )


@pytest.fixture(scope="session")
def audioldm_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A tiny random diffusers AudioLDM folder written by ``AudioLDMPipeline.save_pretrained``."""
    pipe = build_audioldm_pipeline(tiny_tokenizer_dir)
    folder = tmp_path_factory.mktemp("models") / "tiny-audioldm"
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_pipe(tta_model_dir):
    from tta.pipelines import TTAPipeline

    return TTAPipeline.from_pretrained(tta_model_dir)


def sigkill_after_checkpoint(proc, ckpts: Path, step: int, timeout: float = 300) -> int:
    """Wait until the training run in ``proc`` has saved a checkpoint at ``step`` or later in ``ckpts``, kill it
    with SIGKILL (no handler runs), and return the step of its latest checkpoint."""
    import os
    import signal
    import time

    from tta.training.checkpoint import latest_checkpoint

    def latest() -> int:
        return int(latest_checkpoint(ckpts).name.split("_")[1]) if (ckpts / "latest").is_file() else -1

    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None and latest() < step:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stdout.read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return latest()
