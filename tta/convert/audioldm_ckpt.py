"""Convert an original AudioLDM checkpoint (Lightning ``.ckpt`` or ``.safetensors``) into a tta model folder.

The checkpoint's ``state_dict`` holds every part of ``LatentDiffusion``:

==============================  ==============================================  ====================
original prefix                 part                                            tta folder
==============================  ==============================================  ====================
``model.diffusion_model.``      ``openaimodel.UNetModel`` (FiLM-conditioned)    ``unet/``
``model_ema.``                  the UNet's EMA weights (``LitEma``)             ``unet/`` (default)
``first_stage_model.``          mel VAE (``encoder``, ``decoder``, quant convs)  ``vae/``
``first_stage_model.vocoder.``  HiFi-GAN generator                              ``vocoder/``
``cond_stage_model.model.``     CLAP (RoBERTa text branch + HTSAT audio)        ``clap/``
``scale_factor``, ``betas``     latent scale, noise schedule                    ``vae/``, ``scheduler/``
==============================  ==============================================  ====================

``clap/`` holds a full transformers ``ClapModel`` (both towers, ``tokenizer/`` and a ``ClapFeatureExtractor``
configured as AudioLDM's CLAP front-end) when the checkpoint has the HTSAT audio branch, else (or with
``clap_audio=False``) the text tower alone as ``ClapTextModelWithProjection``.

The folder is written next to its destination and renamed into place only when complete. Nothing is
downloaded: the RoBERTa tokenizer (absent from the checkpoint) comes from ``tokenizer`` or the local Hugging
Face cache. Pickled checkpoints are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tta.convert.clap_audio import convert_clap_model, has_audio_branch
from tta.convert.clap_text import convert_clap_text
from tta.convert.common import StateDict, take_prefix
from tta.convert.hifigan import convert_vocoder
from tta.convert.unet import convert_unet
from tta.convert.vae import convert_vae
from tta.errors import InputError, ModelLoadError
from tta.sampling.schedulers import AUDIOLDM_SCHEDULER

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
VOCODER_PREFIX = "first_stage_model.vocoder."
CLAP_PREFIX = "cond_stage_model.model."
ROBERTA = "roberta-base"


@dataclass
class ConvertOptions:
    """What the checkpoint itself does not say.

    Attributes:
        tokenizer: a local folder with the CLAP text branch's tokenizer (roberta-base); None looks in the
            local Hugging Face cache (never the network).
        num_head_channels: channels per UNet attention head; None = the released models' value
            (32; 64 for AudioLDM-L).
        overwrite: replace an existing output folder.
        with_clap: convert CLAP (needs a tokenizer); False skips ``clap/``.
        clap_audio: convert CLAP's audio branch too (a full ``ClapModel``) when the checkpoint has it; False
            writes the text tower only.
        ema: take the UNet's EMA weights when the checkpoint has them, as the original generation code does
            (``LatentDiffusion.ema_scope``); False takes the raw training weights.
    """

    tokenizer: str | os.PathLike | None = None
    num_head_channels: int | None = None
    overwrite: bool = False
    with_clap: bool = True
    clap_audio: bool = True
    ema: bool = True


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``, memory-mapped when the file's format allows (a 2-3 GB checkpoint then
    costs no resident copy)."""
    import zipfile

    mmap = zipfile.is_zipfile(path)  # torch >= 1.6 checkpoints; the legacy format cannot be mapped
    return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """Read a checkpoint's flat state dict: a Lightning ``.ckpt`` (its ``state_dict``) or a ``.safetensors``.

    Raises:
        ModelLoadError: the file is missing, corrupt, holds pickled objects other than tensors, or no
            state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        checkpoint = _torch_load(path)
    except Exception as err:  # torch/safetensors raise many types for a bad file
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"cannot read checkpoint {path} (corrupt, or not tensors only): {detail}") from err
    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ModelLoadError(f"{path} holds no state dict of tensors")
    return state_dict


def unet_state_dict(state_dict: StateDict, ema: bool = True) -> StateDict:
    """The UNet's weights (prefix removed): its EMA copy when present and ``ema``, else the raw ones.

    ``LitEma`` keeps one buffer per UNet parameter, named after ``diffusion_model.<name>`` with the dots removed.
    """
    raw = take_prefix(state_dict, UNET_PREFIX)
    shadows = [
        k for k in state_dict if k.startswith("model_ema.") and k not in ("model_ema.decay", "model_ema.num_updates")
    ]
    if not ema or not shadows:
        return raw
    weights = {}
    for name, value in raw.items():
        shadow = "model_ema." + f"diffusion_model.{name}".replace(".", "")
        if shadow not in state_dict:
            raise ModelLoadError(f"the checkpoint's EMA weights are incomplete (no {shadow!r}); use --no-ema")
        weights[name] = state_dict[shadow].to(value.dtype)
    return weights


def scheduler_config(state_dict: StateDict) -> dict[str, Any]:
    """DDIM scheduler arguments matching AudioLDM's training schedule (checked against ``betas`` if stored)."""
    schedule: dict[str, Any] = dict(AUDIOLDM_SCHEDULER)
    betas = state_dict.get("betas")
    if betas is not None:
        betas = betas.double()
        ramp = torch.linspace(betas[0].sqrt().item(), betas[-1].sqrt().item(), len(betas), dtype=torch.float64) ** 2
        schedule.update(num_train_timesteps=len(betas), beta_start=betas[0].item(), beta_end=betas[-1].item())
        if not torch.allclose(ramp, betas, rtol=1e-5, atol=1e-8):
            schedule["trained_betas"] = betas.tolist()
    return schedule


def load_tokenizer(folder: str | os.PathLike | None):
    """The RoBERTa tokenizer from ``folder``, else from the local Hugging Face cache; never downloads."""
    from transformers import AutoTokenizer

    source = str(folder) if folder is not None else ROBERTA
    if folder is not None and not Path(folder).is_dir():
        raise ModelLoadError(f"tokenizer folder not found: {folder}")
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except Exception as err:
        where = f"from {folder}" if folder is not None else f"for {ROBERTA!r} in the local Hugging Face cache"
        raise ModelLoadError(
            f"cannot load the CLAP text tokenizer {where}; the AudioLDM checkpoint does not contain it: pass "
            f"--tokenizer DIR (a local {ROBERTA} tokenizer folder: vocab.json + merges.txt or tokenizer.json), "
            "or --no-clap to skip the text encoder"
        ) from err


def audioldm_clap_feature_extractor():
    """transformers' CLAP feature extractor set up as AudioLDM's HTSAT-tiny front-end (``audio_cfg`` of
    ``HTSAT-tiny.json``): 48 kHz, 1024-point window, hop 480, 64 slaney mels 50-14000 Hz, 10 s, repeat-padded."""
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(
        feature_size=64,
        sampling_rate=48000,
        hop_length=480,
        max_length_s=10,
        fft_window_size=1024,
        frequency_min=50,
        frequency_max=14000,
        padding="repeatpad",
        truncation="rand_trunc",
    )


def model_index(clap_backend: str | None) -> dict[str, Any]:
    """The ``model_index.json`` of a tta model folder."""
    from tta import __version__

    index: dict[str, Any] = {
        "_class_name": "TTAPipeline",
        "_tta_version": __version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "vocoder": ["transformers", "SpeechT5HifiGan"],
        "scheduler": ["diffusers", "DDIMScheduler"],
    }
    if clap_backend is not None:
        index["clap"] = ["tta", clap_backend]
    return index


def _write_folder(state_dict: StateDict, folder: Path, options: ConvertOptions) -> None:
    from diffusers import DDIMScheduler

    # 1. Split the checkpoint and check every part is there before the heavy work.
    unet_sd = unet_state_dict(state_dict, options.ema)
    vocoder_sd = take_prefix(state_dict, VOCODER_PREFIX)
    vae_sd = {k: v for k, v in take_prefix(state_dict, VAE_PREFIX).items() if not k.startswith("vocoder.")}
    clap_sd = take_prefix(state_dict, CLAP_PREFIX) if options.with_clap else {}
    parts = [
        ("UNet", unet_sd, UNET_PREFIX),
        ("VAE", vae_sd, VAE_PREFIX),
        ("HiFi-GAN vocoder", vocoder_sd, VOCODER_PREFIX),
    ]
    if options.with_clap:
        parts.append(("CLAP (pass --no-clap to skip it)", clap_sd, CLAP_PREFIX))
    for what, part, prefix in parts:
        if not part:
            raise ModelLoadError(f"the checkpoint has no {what}: no keys under {prefix!r}")
    if "scale_factor" not in state_dict:
        raise ModelLoadError("the checkpoint has no 'scale_factor' (the latent scaling): not an AudioLDM model")
    tokenizer = load_tokenizer(options.tokenizer) if options.with_clap else None

    # 2. Convert and write each component.
    convert_unet(unet_sd, options.num_head_channels).save_pretrained(folder / "unet", safe_serialization=True)
    convert_vae(vae_sd, float(state_dict["scale_factor"])).save_pretrained(folder / "vae", safe_serialization=True)
    convert_vocoder(vocoder_sd).save_pretrained(str(folder / "vocoder"), safe_serialization=True)
    DDIMScheduler(**scheduler_config(state_dict)).save_pretrained(folder / "scheduler")
    backend = None
    if tokenizer is not None:
        if options.clap_audio and has_audio_branch(clap_sd):
            convert_clap_model(clap_sd).save_pretrained(str(folder / "clap"), safe_serialization=True)
            audioldm_clap_feature_extractor().save_pretrained(str(folder / "clap"))
            backend = "hf-clap"  # keys of tta.models.clap.BACKENDS
        else:
            convert_clap_text(clap_sd).save_pretrained(str(folder / "clap"), safe_serialization=True)
            backend = "hf-clap-text"
        tokenizer.save_pretrained(str(folder / "clap" / "tokenizer"))
    (folder / "model_index.json").write_text(json.dumps(model_index(backend), indent=2) + "\n")


def convert_audioldm_checkpoint(
    checkpoint: str | os.PathLike, output: str | os.PathLike, options: ConvertOptions | None = None
) -> Path:
    """Convert an original AudioLDM checkpoint into a tta model folder at ``output``; returns its path.

    Raises:
        ModelLoadError: missing/corrupt checkpoint, unexpected layout, or no tokenizer for the CLAP text tower.
        InputError: ``output`` exists and ``options.overwrite`` is not set.
    """
    options = options or ConvertOptions()
    output = Path(output)
    if output.exists() and not options.overwrite:
        raise InputError(f"output folder {output} exists; pass --overwrite to replace it")
    state_dict = read_state_dict(checkpoint)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    try:
        _write_folder(state_dict, tmp, options)
        if output.exists():
            old = output.with_name(f".{output.name}.old-{os.getpid()}")
            output.rename(old)
            try:
                tmp.rename(output)
            except BaseException:
                old.rename(output)  # put the previous folder back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output
