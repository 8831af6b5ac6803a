"""Tiny random family models built offline (seeded), saved by the reference pipelines themselves.

* :func:`build_t5_tokenizer`: a Unigram T5 tokenizer over the test sentences' words (no hub download).
* :func:`build_audioldm2_pipeline`: a diffusers ``AudioLDM2Pipeline`` whose VAE and vocoder are the tta
  fixture's, with a CLAP (text + audio towers), a T5 encoder, a projection model, GPT-2 and a two-stream UNet.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tests.conftest import SENTENCES, build_tiny_clap_model, build_tiny_unet_vae_vocoder
from tta.families.tango_hub import SD21_SCHEDULER

T5_DIM = 24
GPT_DIM = 16
NEW_TOKENS = 8


def build_t5_tokenizer(folder: Path | None = None):
    """A T5 tokenizer whose vocabulary is the words of the test sentences (plus letters for anything else)."""
    from transformers import T5Tokenizer

    words = dict.fromkeys(w.strip(",") for s in SENTENCES for w in s.split())
    extra = "low quality noise music loud quiet".split()
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [("\u2581" + w, -1.0 - 0.01 * i) for i, w in enumerate([*words, *extra])]
    vocab += [(c, -10.0) for c in "abcdefghijklmnopqrstuvwxyz,"]
    tok = T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=32)
    if folder is not None:
        tok.save_pretrained(str(folder))
    return tok


def build_audioldm2_unet(latent_channels: int):
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel

    torch.manual_seed(1)
    return AudioLDM2UNet2DConditionModel(
        in_channels=latent_channels,
        out_channels=latent_channels,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=[[None, GPT_DIM, T5_DIM], [None, GPT_DIM, T5_DIM]],
        attention_head_dim=(2, 4),
        norm_num_groups=8,
    ).eval()


def build_audioldm2_pipeline(roberta_tokenizer):
    """A tiny random diffusers ``AudioLDM2Pipeline`` (DDIM, AudioLDM's schedule)."""
    from diffusers import AudioLDM2Pipeline, DDIMScheduler
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2ProjectionModel
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5EncoderModel

    from tta.sampling.schedulers import AUDIOLDM_SCHEDULER

    _, vae, vocoder = build_tiny_unet_vae_vocoder()
    clap, fe = build_tiny_clap_model(roberta_tokenizer)
    t5_tok = build_t5_tokenizer()
    torch.manual_seed(2)
    t5 = T5EncoderModel(
        T5Config(vocab_size=len(t5_tok), d_model=T5_DIM, d_ff=37, d_kv=8, num_heads=3, num_layers=1)
    ).eval()
    gpt = GPT2LMHeadModel(
        GPT2Config(n_embd=GPT_DIM, n_head=2, n_layer=1, vocab_size=64, n_positions=128, bos_token_id=0, eos_token_id=0)
    ).eval()
    gpt.config.max_new_tokens = NEW_TOKENS
    projection = AudioLDM2ProjectionModel(
        text_encoder_dim=clap.config.projection_dim, text_encoder_1_dim=T5_DIM, langauge_model_dim=GPT_DIM
    )
    with torch.no_grad():  # random but distinct special tokens
        for p in (projection.sos_embed, projection.eos_embed, projection.sos_embed_1, projection.eos_embed_1):
            p.normal_()
    return AudioLDM2Pipeline(
        vae=vae,
        text_encoder=clap,
        text_encoder_2=t5,
        projection_model=projection.eval(),
        language_model=gpt,
        tokenizer=roberta_tokenizer,
        tokenizer_2=t5_tok,
        feature_extractor=fe,
        unet=build_audioldm2_unet(int(vae.config.latent_channels)),
        scheduler=DDIMScheduler(**AUDIOLDM_SCHEDULER),
        vocoder=vocoder,
    )


def save(pipe, folder: Path) -> Path:
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def build_musicldm_pipeline(roberta_tokenizer):
    """A tiny random diffusers ``MusicLDMPipeline``: the tta fixture's UNet, VAE and vocoder, a full CLAP."""
    from diffusers import DDIMScheduler, MusicLDMPipeline

    from tta.sampling.schedulers import AUDIOLDM_SCHEDULER

    unet, vae, vocoder = build_tiny_unet_vae_vocoder()
    clap, fe = build_tiny_clap_model(roberta_tokenizer)
    return MusicLDMPipeline(
        vae=vae,
        text_encoder=clap,
        tokenizer=roberta_tokenizer,
        feature_extractor=fe,
        unet=unet,
        scheduler=DDIMScheduler(**AUDIOLDM_SCHEDULER),
        vocoder=vocoder,
    )


# Stable Diffusion 2.1's DDPM schedule, which Tango trains and samples with (its main_config's scheduler_name)
TANGO_SCHEDULER = SD21_SCHEDULER


def build_tango_modules():
    """(t5, tokenizer, unet, vae, vocoder) of a tiny random Tango: the tta fixture's VAE and vocoder, a T5
    encoder, and a cross-attention UNet over its states."""
    from diffusers import UNet2DConditionModel
    from transformers import T5Config, T5EncoderModel

    _, vae, vocoder = build_tiny_unet_vae_vocoder()
    tok = build_t5_tokenizer()
    torch.manual_seed(3)
    t5 = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=T5_DIM, d_ff=37, d_kv=8, num_heads=3, num_layers=1))
    channels = int(vae.config.latent_channels)
    unet = UNet2DConditionModel(
        in_channels=channels,
        out_channels=channels,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=T5_DIM,
        attention_head_dim=(2, 4),
        norm_num_groups=8,
    )
    return t5.eval(), tok, unet.eval(), vae, vocoder


def save_tango(modules, folder: Path) -> Path:
    """Write the layout tta reads for Tango (see :mod:`tta.families.tango`)."""
    import json

    t5, tok, unet, vae, vocoder = modules
    for name, module in (("text_encoder", t5), ("tokenizer", tok), ("unet", unet), ("vae", vae), ("vocoder", vocoder)):
        module.save_pretrained(str(folder / name))
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(TANGO_SCHEDULER))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "TangoPipeline"}))
    return folder
