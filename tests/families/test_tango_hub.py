"""Tango's own hub layout (tta.families.tango_hub): a tiny folder written as Tango's code saves it (AudioDiffusion's
state dict with unet.* and text_encoder.*, AudioLDM's original VAE + HiFi-GAN from the ``audioldm`` wheel, pickled),
read by tta and compared with Tango's inference over those original modules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.families.builders import T5_DIM, build_t5_tokenizer
from tests.families.tango_reference import tango_reference
from tests.models.original_audioldm import DDCONFIG, HIFIGAN, SCALE_FACTOR, VAE, perturb
from tests.reference import original
from tta.errors import ModelLoadError
from tta.families.tango_hub import MEL, SD21, SD21_SCHEDULER
from tta.pipelines import TTAPipeline

DURATION = 0.64
STEPS = 3
TOL = 1e-4
PROMPTS = ["a dog barks in the rain", "thunder"]


def build_original_tango():
    """(t5, tokenizer, unet, original VAE, original HiFi-GAN) with random weights, seeded."""
    from diffusers import UNet2DConditionModel
    from transformers import T5Config, T5EncoderModel

    tok = build_t5_tokenizer()
    torch.manual_seed(11)
    t5 = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=T5_DIM, d_ff=37, d_kv=8, num_heads=3, num_layers=1))
    unet = UNet2DConditionModel(
        in_channels=DDCONFIG["z_channels"], out_channels=DDCONFIG["z_channels"], block_out_channels=(32, 64),
        layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=T5_DIM, attention_head_dim=(2, 4),
        norm_num_groups=8,
    )  # fmt: skip
    perturb(unet)
    vae = perturb(VAE(DDCONFIG))
    hifigan = original("hifigan")
    vocoder = hifigan.Generator(hifigan.AttrDict(HIFIGAN)).eval()
    vocoder.remove_weight_norm()  # as audioldm.hifigan.utilities.get_vocoder does inside AutoencoderKL
    return t5.eval(), tok, unet.eval(), vae, vocoder


def write_hub_folder(modules, folder: Path) -> Path:
    """The files ``Tango(name)`` reads from a snapshot, plus the UNet config at the path main_config names, and a
    local FLAN-T5 folder (config + tokenizer) that main_config's ``text_encoder_name`` points at."""
    t5, tok, unet, vae, vocoder = modules
    folder.mkdir(parents=True)
    flan = folder.parent / f"{folder.name}-flan-t5"
    t5.config.save_pretrained(str(flan))
    tok.save_pretrained(str(flan))
    (folder / "configs").mkdir()
    unet.save_config(str(folder / "configs"))  # configs/config.json
    (folder / "configs" / "config.json").rename(folder / "configs" / "diffusion_model_config.json")
    main = {
        "text_encoder_name": str(flan), "scheduler_name": SD21, "unet_model_name": None,
        "unet_model_config_path": "configs/diffusion_model_config.json", "snr_gamma": 5,
        "freeze_text_encoder": True, "uncondition": False,
    }  # fmt: skip
    (folder / "main_config.json").write_text(json.dumps(main))
    state = {f"unet.{k}": v for k, v in unet.state_dict().items()}
    state.update({f"text_encoder.{k}": v for k, v in t5.state_dict().items()})
    torch.save(state, folder / "pytorch_model_main.bin")
    vae_config = {"ddconfig": DDCONFIG, "embed_dim": DDCONFIG["z_channels"], "scale_factor": SCALE_FACTOR}
    (folder / "vae_config.json").write_text(json.dumps({**vae_config, "subband": 1, "image_key": "fbank"}))
    vae_state = dict(vae.state_dict())
    vae_state.update({f"vocoder.{k}": v for k, v in vocoder.state_dict().items()})
    torch.save(vae_state, folder / "pytorch_model_vae.bin")
    (folder / "stft_config.json").write_text(json.dumps(MEL))
    torch.save({"mel_basis": torch.zeros(64, 513)}, folder / "pytorch_model_stft.bin")
    return folder


class OriginalDecoder:
    """Tango's ``vae.decode_first_stage`` + ``decode_to_waveform`` over the original modules, in the reference's
    calling convention (``vae.decode(z).sample`` [B, 1, T, F]; ``vocoder(mel [B, T, F]) -> [B, N]``)."""

    def __init__(self, vae, vocoder):
        self.original_vae, self.original_vocoder = vae, vocoder
        self.config = type("Config", (), {"scaling_factor": SCALE_FACTOR})

    def decode(self, z):
        return type("Out", (), {"sample": self.original_vae.decode(z)})

    def __call__(self, mel):
        return self.original_vocoder(mel.permute(0, 2, 1)).squeeze(1)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    modules = build_original_tango()
    return modules, write_hub_folder(modules, tmp_path_factory.mktemp("models") / "tango-hub")


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_hub_folder_matches_tangos_inference_over_the_original_modules(hub, guidance):
    from diffusers import DDIMScheduler

    (t5, tok, unet, vae, vocoder), folder = hub
    ours = TTAPipeline.from_pretrained(folder)
    assert ours.scheduler_config["prediction_type"] == "v_prediction"
    latents = torch.randn((2, *ours.layout(DURATION).latent_shape), generator=torch.Generator().manual_seed(5))
    decoder = OriginalDecoder(vae, vocoder)
    scheduler = DDIMScheduler.from_config(SD21_SCHEDULER)
    with torch.no_grad():
        expected = tango_reference(
            t5, tok, unet, decoder, decoder, scheduler, PROMPTS, latents.clone(), STEPS, guidance
        ).numpy()
    got = ours(
        PROMPTS, audio_length_in_s=DURATION, num_inference_steps=STEPS, guidance_scale=guidance, sampler="ddim",
        latents=latents.clone(), progress=False, peak_limit=None,
    ).audios  # fmt: skip
    expected = expected[:, : got.shape[1]]
    assert got.shape == (2, round(DURATION * 16000)) and np.abs(expected).max() > 1e-3
    assert np.abs(got - expected).max() <= TOL


def test_hub_folder_hash_covers_its_pickles_and_cli_generates(hub, tmp_path):
    from tta.cli import main
    from tta.loading import model_hash

    _, folder = hub
    copy = shutil.copytree(folder, tmp_path / "copy")
    before = model_hash(copy)
    state = torch.load(copy / "pytorch_model_main.bin", weights_only=True)
    key = next(k for k in state if k.startswith("unet.conv_in"))
    state[key] = state[key] + 1e-3
    torch.save(state, copy / "pytorch_model_main.bin")
    assert model_hash(copy) != before
    out = tmp_path / "a.wav"
    args = ["generate", "thunder", "--model", str(folder), "--steps", "2", "--duration", "0.3", "--no-progress"]
    assert main([*args, "--seed", "3", "-o", str(out)]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["model_hash"] == model_hash(folder)


def _broken(folder: Path, tmp_path: Path, edit) -> Path:
    copy = shutil.copytree(folder, tmp_path / "broken")
    edit(copy)
    return copy


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda f: (f / "configs" / "diffusion_model_config.json").unlink(), "unet/config.json"),
        (lambda f: (f / "pytorch_model_vae.bin").unlink(), "pytorch_model_vae.bin"),
        (lambda f: (f / "stft_config.json").write_text(json.dumps({**MEL, "hop_length": 256})), "stft_config.json"),
        (lambda f: (f / "pytorch_model_main.bin").write_bytes(b"not a pickle"), "pytorch_model_main.bin"),
        (
            lambda f: (f / "main_config.json").write_text(
                json.dumps({**json.loads((f / "main_config.json").read_text()), "text_encoder_name": "nowhere/t5"})
            ),
            "text_encoder/config.json",
        ),
    ],
    ids=["no-unet-config", "no-vae", "stft-mismatch", "corrupt-main", "no-t5"],
)
def test_a_broken_hub_folder_is_one_line_naming_the_file(hub, tmp_path, edit, named):
    _, folder = hub
    with pytest.raises(ModelLoadError, match=named.replace(".", r"\.")) as err:
        TTAPipeline.from_pretrained(_broken(folder, tmp_path, edit))
    assert "\n" not in str(err.value)
