"""Slow: a full-size AudioLDM-S checkpoint (random weights, original modules and config) converts with tta's
AudioLDM-S defaults and reproduces the original UNet, VAE decoder and HiFi-GAN."""

from __future__ import annotations

import json

import pytest
import torch

from tests.models.original_audioldm import VAE, perturb
from tests.reference import original, require_audioldm
from tta.convert import ConvertOptions, convert_audioldm_checkpoint
from tta.models.unet import AUDIOLDM_S_UNET
from tta.models.vae import AUDIOLDM_S_VAE
from tta.models.vocoder import AUDIOLDM_S_VOCODER

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]


def _max_rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours - ref).abs().max() / ref.abs().max().clamp(min=1.0)).item()


def test_full_size_audioldm_s(tmp_path):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import SpeechT5HifiGan

    require_audioldm()
    params = original("utils").default_audioldm_config("audioldm-s-full")["model"]["params"]
    hifigan = original("hifigan")
    torch.manual_seed(0)
    unet = perturb(original("latent_diffusion.openaimodel").UNetModel(**params["unet_config"]["params"]), 0.01)
    vae = perturb(VAE(params["first_stage_config"]["params"]["ddconfig"]), 0.01)
    vocoder = hifigan.Generator(hifigan.AttrDict(original("hifigan.utilities").HIFIGAN_16K_64)).eval()
    vocoder.remove_weight_norm()
    state_dict = {"scale_factor": torch.tensor(0.93)}
    for prefix, module in (
        ("model.diffusion_model.", unet),
        ("first_stage_model.", vae),
        ("first_stage_model.vocoder.", vocoder),
    ):
        state_dict.update({prefix + k: v for k, v in module.state_dict().items()})
    torch.save({"state_dict": state_dict}, tmp_path / "audioldm-s.ckpt")
    del state_dict

    out = convert_audioldm_checkpoint(tmp_path / "audioldm-s.ckpt", tmp_path / "tta", ConvertOptions(with_clap=False))
    unet_config = json.loads((out / "unet/config.json").read_text())
    assert {k: unet_config[k] for k in AUDIOLDM_S_UNET} == AUDIOLDM_S_UNET
    vae_config = json.loads((out / "vae/config.json").read_text())
    assert {k: vae_config[k] for k in AUDIOLDM_S_VAE} == {**AUDIOLDM_S_VAE, "scaling_factor": pytest.approx(0.93)}
    vocoder_config = json.loads((out / "vocoder/config.json").read_text())
    assert {k: vocoder_config[k] for k in AUDIOLDM_S_VOCODER} == AUDIOLDM_S_VOCODER

    g = torch.Generator().manual_seed(1)
    latents, film = torch.randn(1, 8, 16, 16, generator=g), torch.randn(1, 512, generator=g)
    mel = torch.randn(1, 64, 8, generator=g)
    with torch.no_grad():
        ours = UNet2DConditionModel.from_pretrained(out / "unet").eval()
        t = torch.tensor([500])
        assert _max_rel_err(ours(latents, t, None, class_labels=film).sample, unet(latents, t, y=film)) <= 1e-5
        del ours
        ours = AutoencoderKL.from_pretrained(out / "vae").eval()
        z = latents[:, :, :8]
        assert _max_rel_err(ours.decode(z).sample, vae.decode(z)) <= 1e-5
        ours = SpeechT5HifiGan.from_pretrained(out / "vocoder").eval()
        assert _max_rel_err(ours(mel.transpose(1, 2)), vocoder(mel).squeeze(1)) <= 1e-5
