"""Tango's own published folders (``declare-lab/tango``, ``tango-full``, ``tango-full-ft-*``, ``tango2``,
``tango2-full``), read as they are downloaded, into the same components as :mod:`tta.families.tango`.

What such a folder holds, and where each part comes from::

    main_config.json         AudioDiffusion's arguments: text_encoder_name, scheduler_name, unet_model_config_path
    pytorch_model_main.bin   AudioDiffusion's state dict: unet.* (diffusers UNet2DConditionModel), text_encoder.*
    vae_config.json          AudioLDM's AutoencoderKL arguments (ddconfig, embed_dim, scale_factor)
    pytorch_model_vae.bin    its state dict: encoder.*, decoder.*, quant convs, vocoder.* (AudioLDM's HiFi-GAN)
    stft_config.json         the mel front-end (checked against tta's: 16 kHz, 1024 / 160, 64 bins, 0-8 kHz)
    pytorch_model_stft.bin   its fixed STFT / mel matrices (not needed: tta computes them)

The folder alone does not say everything, so tta looks for the rest, in this order, and never downloads:

* **UNet config**: ``unet/config.json``, else the file ``unet_model_config_path`` names (relative to the folder or
  absolute; Tango's GitHub repository ships it as ``configs/diffusion_model_config.json``).
* **FLAN-T5** (config and tokenizer; its weights come from ``text_encoder.*`` when the state dict has them):
  ``text_encoder/`` + ``tokenizer/`` in the folder, else ``text_encoder_name`` as a local folder, else that name
  in the local Hugging Face cache.
* **Noise schedule**: ``scheduler/scheduler_config.json``, else ``scheduler_name`` as a local folder or in the
  local Hugging Face cache, else, for ``stabilityai/stable-diffusion-2-1`` (what every Tango release names),
  :data:`SD21_SCHEDULER`.

Pickles are read with ``torch.load(weights_only=True)`` (tensors only). The VAE and vocoder go through the same
converters as ``tta convert`` (:mod:`tta.convert.vae`, :mod:`tta.convert.hifigan`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tta.convert.common import StateDict, load_converted, take_prefix
from tta.errors import ModelLoadError
from tta.families.common import expect, load, load_tokenizer, read_json

HUB_FILES = ("main_config.json", "pytorch_model_main.bin")
SD21 = "stabilityai/stable-diffusion-2-1"
# stabilityai/stable-diffusion-2-1's scheduler/scheduler_config.json: the schedule Tango's AudioDiffusion loads with
# DDPMScheduler.from_pretrained(scheduler_name, subfolder="scheduler") for training and inference.
SD21_SCHEDULER = {
    "_class_name": "DDPMScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}
# tta's mel front-end (tta.audio), which Tango's TacotronSTFT must match for editing and evaluation to agree.
MEL = {
    "sampling_rate": 16000,
    "filter_length": 1024,
    "hop_length": 160,
    "win_length": 1024,
    "n_mel_channels": 64,
    "mel_fmin": 0,
    "mel_fmax": 8000,
}


def is_hub_layout(folder: Path) -> bool:
    """Tango's own published folder (pickled weights, no ``model_index.json``)."""
    return all((folder / name).is_file() for name in HUB_FILES)


def read_weights(path: Path) -> StateDict:
    """A state dict from ``path`` (``.bin`` read tensors-only, or a ``.safetensors`` beside it of the same stem)."""
    from tta.convert.audioldm_ckpt import read_state_dict

    safe = path.with_suffix(".safetensors")
    return read_state_dict(safe if safe.is_file() else path)


def local_source(folder: Path, name: Any) -> Path | None:
    """``name`` as a local folder or file (absolute, or relative to ``folder``), or None."""
    if not isinstance(name, str) or not name:
        return None
    for path in (Path(name).expanduser(), folder / name):
        if path.exists():
            return path
    return None


def cached_snapshot(repo_id: Any) -> Path | None:
    """The local Hugging Face cache's copy of ``repo_id`` (never downloads), or None."""
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or no huggingface_hub: the caller says what is missing
        return None


def unet_config(folder: Path, main: dict[str, Any]) -> dict[str, Any]:
    named = main.get("unet_model_config_path")
    source = local_source(folder, named)
    for path in (folder / "unet" / "config.json", source, source / "config.json" if source else None):
        if path is not None and path.is_file():
            return read_json(path)
    raise ModelLoadError(
        f"{folder / 'unet' / 'config.json'}: missing; Tango's folder names its UNet config {named!r}, which is not "
        "there: copy configs/diffusion_model_config.json from Tango's GitHub repository to unet/config.json"
    )


def scheduler_config(folder: Path, main: dict[str, Any]) -> dict[str, Any]:
    name = main.get("scheduler_name")
    for root in (folder, local_source(folder, name), cached_snapshot(name)):
        if root is not None and (root / "scheduler" / "scheduler_config.json").is_file():
            return read_json(root / "scheduler" / "scheduler_config.json")
    if name == SD21:
        return dict(SD21_SCHEDULER)
    raise ModelLoadError(
        f"{folder / 'scheduler' / 'scheduler_config.json'}: missing; main_config.json names the schedule of "
        f"{name!r}, which is neither a local folder nor in the local Hugging Face cache"
    )


def text_encoder(folder: Path, main: dict[str, Any], state: StateDict):
    """(T5EncoderModel, tokenizer): config and tokenizer found as the module docstring says; weights from the
    state dict's ``text_encoder.*`` when present, else from the T5 folder."""
    from transformers import T5Config, T5EncoderModel

    name = main.get("text_encoder_name")
    roots = [folder / "text_encoder", local_source(folder, name), cached_snapshot(name)]
    root = next((r for r in roots if r is not None and (r / "config.json").is_file()), None)
    if root is None:
        raise ModelLoadError(
            f"{folder / 'text_encoder' / 'config.json'}: missing; the T5 encoder {name!r} that main_config.json "
            "names is neither a local folder nor in the local Hugging Face cache: put its config.json in "
            "text_encoder/ and its tokenizer in tokenizer/"
        )
    tok_dir = folder / "tokenizer" if (folder / "tokenizer").is_dir() else root
    tokenizer = load_tokenizer(tok_dir)
    weights = take_prefix(state, "text_encoder.")
    if not weights:
        t5 = load(root, T5EncoderModel.from_pretrained, str(root), local_files_only=True)
        return t5.eval(), tokenizer
    config = load(root / "config.json", T5Config.from_pretrained, str(root), local_files_only=True)
    t5 = T5EncoderModel(config)
    weights.setdefault("encoder.embed_tokens.weight", weights.get("shared.weight"))  # tied to shared
    load_converted(t5, {k: v for k, v in weights.items() if v is not None}, f"T5 encoder ({root / 'config.json'})")
    return t5.eval(), tokenizer


def vae_and_vocoder(folder: Path):
    """AudioLDM's VAE and HiFi-GAN from ``vae_config.json`` + ``pytorch_model_vae.bin``, as diffusers'
    ``AutoencoderKL`` and transformers' ``SpeechT5HifiGan``."""
    from tta.convert.hifigan import convert_vocoder
    from tta.convert.vae import convert_vae

    config = read_json(folder / "vae_config.json")
    scale = config.get("scale_factor")
    expect(isinstance(scale, (int, float)), folder / "vae_config.json", f"no numeric scale_factor (got {scale!r})")
    expect(int(config.get("subband", 1)) == 1, folder / "vae_config.json", "sub-band VAEs are not supported")
    state = read_weights(folder / "pytorch_model_vae.bin")
    vocoder_state = take_prefix(state, "vocoder.")
    vae_state = {k: v for k, v in state.items() if not k.startswith("vocoder.")}
    where = folder / "pytorch_model_vae.bin"
    expect(bool(vocoder_state), where, "holds no vocoder.* weights (AudioLDM's HiFi-GAN)")
    vae = load(where, convert_vae, vae_state, float(scale))
    vocoder = load(where, convert_vocoder, vocoder_state, sampling_rate=MEL["sampling_rate"])
    return vae, vocoder


def check_stft(folder: Path) -> None:
    path = folder / "stft_config.json"
    if not path.is_file():
        return  # generation does not need it
    config = read_json(path)
    wrong = {k: config.get(k) for k, v in MEL.items() if k in config and float(config[k]) != float(v)}
    expect(not wrong, path, f"mel front-end {wrong} differs from tta's {MEL}")


def load_hub_folder(folder: Path):
    """The :class:`~tta.loading.Components` of a Tango hub folder (CPU, eval mode, no network)."""
    from diffusers import UNet2DConditionModel

    from tta.families.tango import CLASS_NAME, TangoTextEncoder, TangoUNet
    from tta.loading import Components

    for name in ("vae_config.json", "pytorch_model_vae.bin"):
        expect((folder / name).is_file(), folder / name, "missing (Tango's VAE and vocoder)")
    main = read_json(folder / "main_config.json")
    check_stft(folder)
    config = unet_config(folder, main)
    scheduler = scheduler_config(folder, main)
    state = read_weights(folder / "pytorch_model_main.bin")
    where = folder / "pytorch_model_main.bin"
    expect(not any(k.startswith("group_in.") for k in state), where, "a UNet over 4 latent channels is not supported")
    unet = load(where, UNet2DConditionModel.from_config, config)
    load_converted(unet, take_prefix(state, "unet."), f"UNet ({where})")
    t5, tokenizer = text_encoder(folder, main, state)
    del state
    expect(
        unet.config.cross_attention_dim == t5.config.d_model, where,
        f"the UNet's cross_attention_dim {unet.config.cross_attention_dim} does not match the T5's d_model "
        f"{t5.config.d_model}",
    )  # fmt: skip
    vae, vocoder = vae_and_vocoder(folder)
    expect(
        unet.config.in_channels == vae.config.latent_channels, where,
        f"the UNet's {unet.config.in_channels} input channels do not match the VAE's "
        f"{vae.config.latent_channels} latent channels ({folder / 'vae_config.json'})",
    )  # fmt: skip
    encoder = TangoTextEncoder(t5, tokenizer)
    adapter = TangoUNet(unet.eval(), encoder.packer)
    for module in (adapter, vae, vocoder, encoder):
        module.eval()
    return Components(adapter, vae, vocoder, encoder, scheduler, CLASS_NAME, {}, None)
