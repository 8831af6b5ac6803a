"""Tiny original AudioLDM components with random weights, and a checkpoint in the original Lightning layout.

Built with the original modules from the ``audioldm`` wheel (see ``tests/reference.py``). Every parameter is
perturbed so that zero-initialised layers (the UNet's output conv, the transformers' ``proj_out``) and the
norms' identity affines carry signal: a wrong mapping cannot hide behind a zero.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from tests.reference import htsat, original

FILM_DIM = 16  # CLAP embedding size of the tiny model (512 in AudioLDM)
NUM_HEAD_CHANNELS = 16
SCALE_FACTOR = 0.9227
UNET_KWARGS = dict(
    image_size=16, in_channels=8, out_channels=8, model_channels=32, attention_resolutions=[2, 4], num_res_blocks=2,
    channel_mult=[1, 2, 2], num_head_channels=NUM_HEAD_CHANNELS, use_spatial_transformer=True,
    extra_film_condition_dim=FILM_DIM, extra_film_use_concat=True,
)  # fmt: skip
DDCONFIG = dict(
    double_z=True, z_channels=8, resolution=64, downsample_time=False, in_channels=1, out_ch=1, ch=32,
    ch_mult=[1, 2, 2], num_res_blocks=1, attn_resolutions=[], dropout=0.0,
)  # fmt: skip
HIFIGAN = dict(
    upsample_rates=[5, 4, 2, 2, 2], upsample_kernel_sizes=[16, 16, 8, 4, 4], upsample_initial_channel=64,
    resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], num_mels=64, resblock="1",
)  # fmt: skip


HTSAT = dict(
    spec_size=256, patch_size=4, patch_stride=(4, 4), num_classes=527, embed_dim=16, depths=[1, 2], num_heads=[1, 2],
    window_size=8, enable_fusion=False,
)  # fmt: skip
HTSAT_AUDIO_CFG = dict(
    mel_bins=64, sample_rate=48000, window_size=1024, hop_size=480, fmin=50, fmax=14000, class_num=527,
    enable_repeat_mode=False,
)  # fmt: skip


def perturb(module: nn.Module, scale: float = 0.05) -> nn.Module:
    """Add N(0, scale^2) noise to every parameter (eval mode)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module.eval()


class VAE(nn.Module):
    """The original ``AutoencoderKL``'s weights (encoder, decoder, quant convs) without its full-size vocoder."""

    def __init__(self, ddconfig: dict):
        super().__init__()
        modules = original("variational_autoencoder.modules")
        z = ddconfig["z_channels"]
        self.encoder = modules.Encoder(**ddconfig)
        self.decoder = modules.Decoder(**ddconfig)
        self.quant_conv = nn.Conv2d(2 * z, 2 * z, 1)
        self.post_quant_conv = nn.Conv2d(z, z, 1)

    def moments(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, 1, T, F] -> [B, 2z, T/4, F/4] (mean, logvar), as ``AutoencoderKL.encode`` before sampling."""
        return self.quant_conv(self.encoder(mel))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z))


def tiny_roberta_tokenizer(folder: Path) -> Path:
    """A byte-level BPE tokenizer with RoBERTa's special tokens and a 33-entry vocabulary, saved to ``folder``."""
    from transformers import RobertaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, "\u0120": 5, "!": 6}
    vocab.update({chr(c): 7 + i for i, c in enumerate(range(ord("a"), ord("z") + 1))})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=32)
    tokenizer.save_pretrained(str(folder))
    return folder


@dataclass
class OriginalAudioLDM:
    """The original modules and their state dict in the Lightning layout of a released checkpoint."""

    unet: nn.Module  # holding the EMA weights, as in the original's ema_scope (generation)
    raw_unet: nn.Module  # the raw training weights
    vae: VAE
    vocoder: nn.Module
    text_branch: nn.Module
    text_projection: nn.Module
    audio_branch: nn.Module
    audio_projection: nn.Module
    state_dict: dict[str, torch.Tensor]


def build_original(seed: int = 0) -> OriginalAudioLDM:
    """Tiny random AudioLDM in the original layout (``LatentDiffusion.state_dict()`` key names)."""
    from transformers import RobertaConfig, RobertaModel

    torch.manual_seed(seed)
    unet = perturb(original("latent_diffusion.openaimodel").UNetModel(**UNET_KWARGS))
    vae = perturb(VAE(DDCONFIG))
    hifigan = original("hifigan")
    vocoder = hifigan.Generator(hifigan.AttrDict(HIFIGAN)).eval()  # init: N(0, 0.01) convs, default biases
    vocoder.remove_weight_norm()  # as audioldm.hifigan.utilities.get_vocoder does before loading weights
    text_config = RobertaConfig(
        vocab_size=40, hidden_size=64, num_hidden_layers=2, num_attention_heads=1, intermediate_size=96,
        max_position_embeddings=40, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5,
    )  # fmt: skip
    text_branch = perturb(RobertaModel(text_config))
    text_projection = perturb(nn.Sequential(nn.Linear(64, FILM_DIM), nn.ReLU(), nn.Linear(FILM_DIM, FILM_DIM)))
    audio_branch = htsat().HTSAT_Swin_Transformer(config=SimpleNamespace(**HTSAT_AUDIO_CFG), **HTSAT)
    audio_branch.spectrogram_extractor = nn.Identity()  # torchlibrosa front-end: tests feed log-mels [B, 1, T, 64]
    audio_branch.logmel_extractor = nn.Identity()
    perturb(audio_branch, scale=0.3)  # large enough for attention patterns to matter
    with torch.no_grad():
        audio_branch.bn0.running_mean.normal_()
        audio_branch.bn0.running_var.uniform_(0.5, 2.0)
    hidden = audio_branch.num_features
    audio_projection = perturb(nn.Sequential(nn.Linear(hidden, FILM_DIM), nn.ReLU(), nn.Linear(FILM_DIM, FILM_DIM)))

    state_dict: dict[str, torch.Tensor] = {}
    parts = {
        "model.diffusion_model.": unet,
        "first_stage_model.": vae,
        "first_stage_model.vocoder.": vocoder,
        "cond_stage_model.model.text_branch.": text_branch,
        "cond_stage_model.model.text_projection.": text_projection,
        "cond_stage_model.model.audio_branch.": audio_branch,
        "cond_stage_model.model.audio_projection.": audio_projection,
    }
    for prefix, module in parts.items():
        state_dict.update({prefix + k: v.clone() for k, v in module.state_dict().items()})
    # Parts of the real checkpoint that the conversion must ignore or read: transformers < 4.31 saved RoBERTa's
    # position_ids buffer; the torchlibrosa front-end's fixed STFT/mel weights and the training-only MLPs are not
    # converted; the logit scales are.
    state_dict["cond_stage_model.model.text_branch.embeddings.position_ids"] = torch.arange(40)[None]
    state_dict["cond_stage_model.model.audio_branch.spectrogram_extractor.stft.conv_real.weight"] = torch.randn(
        4, 1, 8
    )
    state_dict["cond_stage_model.model.text_transform.sequential.0.weight"] = torch.randn(FILM_DIM, FILM_DIM)
    state_dict["cond_stage_model.model.audio_branch.logmel_extractor.melW"] = torch.randn(513, 64)
    state_dict["cond_stage_model.model.logit_scale_a"] = torch.tensor(2.3)
    state_dict["cond_stage_model.model.logit_scale_t"] = torch.tensor(2.5)
    state_dict["scale_factor"] = torch.tensor(SCALE_FACTOR)
    betas = torch.linspace(0.0015**0.5, 0.0195**0.5, 1000, dtype=torch.float64) ** 2
    state_dict["betas"] = betas.float()
    state_dict["alphas_cumprod"] = torch.cumprod(1 - betas, 0).float()
    # The UNet's EMA copy (LatentDiffusion's model_ema, a LitEma of DiffusionWrapper), made distinct from the raw
    # weights; generation runs with it swapped in (ema_scope -> LitEma.copy_to).
    wrapper = nn.Module()
    wrapper.diffusion_model = unet
    ema = original("latent_diffusion.ema").LitEma(wrapper)
    with torch.no_grad():
        for shadow in ema.buffers():
            if shadow.is_floating_point() and shadow.ndim > 0:
                shadow.add_(0.02 * torch.randn_like(shadow))
    state_dict.update({f"model_ema.{k}": v.clone() for k, v in ema.state_dict().items()})
    raw_unet = copy.deepcopy(unet)
    ema.copy_to(wrapper)
    return OriginalAudioLDM(
        unet, raw_unet, vae, vocoder, text_branch, text_projection, audio_branch.eval(), audio_projection, state_dict
    )
