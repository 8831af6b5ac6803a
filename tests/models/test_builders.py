"""Model builders: AudioLDM-S defaults equal the original architecture; the YAML configs build and run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.reference import original
from tta.convert.hifigan import convert_vocoder_state_dict, fold_weight_norm, vocoder_config_from_state_dict
from tta.convert.unet import convert_unet_state_dict, unet_config_from_state_dict
from tta.convert.vae import convert_vae_state_dict, vae_config_from_state_dict
from tta.models.unet import AUDIOLDM_S_UNET, build_unet, unet_downsample_factor
from tta.models.vae import AUDIOLDM_S_VAE, build_vae, vae_downsample_factor
from tta.models.vocoder import AUDIOLDM_S_VOCODER, build_vocoder

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "model"
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _original_params() -> dict:
    """``LatentDiffusion`` params of audioldm-s-full from the original code's default config."""
    return original("utils").default_audioldm_config("audioldm-s-full")["model"]["params"]


def _same_layout(ours: dict[str, torch.Tensor], converted: dict[str, torch.Tensor]) -> None:
    assert set(ours) == set(converted)
    assert [k for k in ours if ours[k].shape != converted[k].shape] == []


def _is_subset(config: dict, defaults: dict) -> None:
    """Every inferred field either equals the tta default or is the library default the builder leaves alone."""
    library_defaults = {
        "sample_size": None, "transformer_layers_per_block": [1, 1, 1, 1], "use_linear_projection": False,
        "norm_eps": 1e-5, "resnet_time_scale_shift": "default",
    }  # fmt: skip
    for key, value in config.items():
        assert defaults.get(key, library_defaults.get(key)) == value, key


def test_unet_defaults_are_audioldm_s():
    """Full-size original UNetModel on the meta device (no memory): same config, keys and shapes."""
    with torch.device("meta"):
        reference = original("latent_diffusion.openaimodel").UNetModel(**_original_params()["unet_config"]["params"])
        unet = build_unet()
    state_dict = reference.state_dict()
    config = unet_config_from_state_dict(state_dict)
    _is_subset(config, AUDIOLDM_S_UNET)
    _same_layout(unet.state_dict(), convert_unet_state_dict(state_dict, config))
    assert sum(p.numel() for p in unet.parameters()) == sum(p.numel() for p in reference.parameters())
    assert unet_downsample_factor(unet) == 8


def test_vae_defaults_are_audioldm_s():
    ddconfig = _original_params()["first_stage_config"]["params"]["ddconfig"]
    modules = original("variational_autoencoder.modules")
    with torch.device("meta"):
        parts = {
            "encoder": modules.Encoder(**ddconfig),
            "decoder": modules.Decoder(**ddconfig),
            "quant_conv": torch.nn.Conv2d(16, 16, 1),
            "post_quant_conv": torch.nn.Conv2d(8, 8, 1),
        }
        vae = build_vae()
    state_dict = {f"{name}.{k}": v for name, part in parts.items() for k, v in part.state_dict().items()}
    config = vae_config_from_state_dict(state_dict, scaling_factor=1.0)
    assert config == AUDIOLDM_S_VAE
    _same_layout(vae.state_dict(), convert_vae_state_dict(state_dict, config))
    assert vae_downsample_factor(vae) == 4


def test_vocoder_defaults_are_audioldm_s():
    hifigan = original("hifigan")
    with torch.device("meta"):
        reference = hifigan.Generator(hifigan.AttrDict(original("hifigan.utilities").HIFIGAN_16K_64))
        vocoder = build_vocoder()
    state_dict = fold_weight_norm(reference.state_dict())  # the generator is built with weight norm
    config = vocoder_config_from_state_dict(state_dict)
    assert config == AUDIOLDM_S_VOCODER
    _same_layout(vocoder.state_dict(), convert_vocoder_state_dict(state_dict, config))


def test_audioldm_s_yaml_equals_defaults():
    config = OmegaConf.to_container(OmegaConf.load(CONFIGS / "audioldm_s.yaml"))
    assert config["unet"] == AUDIOLDM_S_UNET
    assert config["vae"] == AUDIOLDM_S_VAE
    assert config["vocoder"] == AUDIOLDM_S_VOCODER


def test_tiny_config_builds_and_runs():
    config = OmegaConf.to_container(OmegaConf.load(CONFIGS / "tiny.yaml"))
    torch.manual_seed(0)
    unet, vae, vocoder = build_unet(**config["unet"]), build_vae(**config["vae"]), build_vocoder(**config["vocoder"])
    frames, mels = 32, 64
    with torch.no_grad():
        latents = vae.encode(torch.randn(1, 1, frames, mels)).latent_dist.mode()
        assert latents.shape == (1, 8, frames // 4, mels // 4)
        clap = torch.randn(1, unet.config.projection_class_embeddings_input_dim)
        noise = unet(latents, torch.tensor([10]), encoder_hidden_states=None, class_labels=clap).sample
        assert noise.shape == latents.shape
        mel = vae.decode(latents).sample
        assert mel.shape == (1, 1, frames, mels)
        wav = vocoder(mel[:, 0])
    assert wav.shape[0] == 1 and 160 * frames <= wav.shape[1] <= 160 * frames + 64
