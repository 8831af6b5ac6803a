"""What every family module shares: checking a folder's files before anything loads, offline loading, and the
packed condition rows that carry a family's conditioning through the pipeline core unchanged.

The core (:mod:`tta.pipelines`) moves condition rows [B, D] around (negative prompts, repeats, guidance's
``cat([uncond, cond])``) without looking inside them. A family whose UNet wants cross-attention sequences and masks
packs them, per text, into one flat row (:class:`RowPacker`); its UNet adapter unpacks the batch right before the
UNet call. Every text is encoded alone, so its condition never depends on the other texts of a batch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from tta.errors import InputError, ModelLoadError
from tta.models.clap.base import ClapEncoder

DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
TRANSFORMERS_WEIGHTS = "model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "spiece.model", "tokenizer_config.json")
OPTS = {"use_safetensors": True, "local_files_only": True}


def read_json(path: Path) -> dict[str, Any]:
    from tta.loading import _read_json

    return _read_json(path)


def check_files(folder: Path, components: dict[str, str], tokenizers: tuple[str, ...] = ()) -> None:
    """Every file a folder needs, checked before anything loads: ``components`` maps a sub-folder to its weights
    file name (next to a ``config.json``); each of ``tokenizers`` must hold tokenizer files. One
    :class:`ModelLoadError` naming the first missing file."""
    for sub, weights in components.items():
        read_json(folder / sub / "config.json")
        path = folder / sub / weights
        if not path.is_file() and not (folder / sub / f"{weights}.index.json").is_file():
            other = [p.name for p in (folder / sub).glob("*.bin")]
            hint = f" (found {', '.join(other)}: tta loads safetensors only)" if other else ""
            raise ModelLoadError(f"missing weights {path}{hint}")
    for sub in tokenizers:
        if not any((folder / sub / name).is_file() for name in TOKENIZER_FILES):
            raise ModelLoadError(f"missing tokenizer {folder / sub / 'tokenizer.json'} (no tokenizer files in {sub}/)")


def load(what: Path, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, any failure one :class:`ModelLoadError` naming ``what``."""
    try:
        return fn(*args, **kwargs)
    except ModelLoadError:
        raise
    except Exception as err:  # noqa: BLE001 - config / safetensors / tokenizer errors -> one line
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"cannot load {what}: {msg}") from err


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return load(folder, AutoTokenizer.from_pretrained, str(folder), local_files_only=True)


def expect(condition: bool, path: Path, why: str) -> None:
    """A mismatched component: one :class:`ModelLoadError` naming its file."""
    if not condition:
        raise ModelLoadError(f"{path}: {why}")


class RowPacker:
    """Named tensors of fixed shapes <-> one flat float row per text (``pack``: [1, width]; ``unpack``: [B, ...])."""

    def __init__(self, **shapes: tuple[int, ...]):
        self.shapes = dict(shapes)
        self.sizes = {name: math.prod(shape) for name, shape in self.shapes.items()}
        self.width = sum(self.sizes.values())

    def pack(self, **parts: torch.Tensor) -> torch.Tensor:
        flat = [parts[name].reshape(1, -1).float() for name in self.shapes]
        return torch.cat(flat, dim=1)

    def unpack(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"expected packed condition rows [B, {self.width}], got {tuple(rows.shape)}")
        out, start = {}, 0
        for name, shape in self.shapes.items():
            out[name] = rows[:, start : start + self.sizes[name]].reshape(rows.shape[0], *shape)
            start += self.sizes[name]
        return out


def pad_to(x: torch.Tensor, length: int) -> torch.Tensor:
    """[1, L, ...] zero-padded (or cut) to [1, length, ...] along dim 1."""
    if x.shape[1] >= length:
        return x[:, :length]
    pad = x.new_zeros((x.shape[0], length - x.shape[1], *x.shape[2:]))
    return torch.cat([x, pad], dim=1)


def trim_masked(states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a batch of padded sequences [B, L, D] and masks [B, L] to the longest unmasked length of the batch
    (masked positions add nothing to attention; cutting them only saves work)."""
    keep = max(int(mask.sum(dim=1).max().item()), 1)
    return states[:, :keep], mask[:, :keep]


class PackedTextEncoder(ClapEncoder):
    """A family's text conditioning in the pipeline's ``clap`` slot: ``encode_text`` gives packed rows
    [B, width] (one text at a time), not CLAP embeddings; it has no audio tower (re-ranking uses the pipeline's
    ``reranker``)."""

    has_audio = False
    offload_via_forward = True  # encode_text runs forward: model CPU offload hooks see it (tta.pipelines.offload)
    packer: RowPacker

    @property
    def embedding_dim(self) -> int:  # type: ignore[override]
        return self.packer.width

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return self(texts)

    @torch.no_grad()
    def forward(self, texts: list[str]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        return torch.cat([self.encode_one(text) for text in texts])

    def encode_one(self, text: str) -> torch.Tensor:
        raise NotImplementedError

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        raise InputError(f"{type(self).__name__} encodes text only (it conditions the UNet; it is no CLAP)")


class UNetAdapter(torch.nn.Module):
    """Wraps a family's UNet so the core's guided loop (``unet(x, t, encoder_hidden_states=None,
    class_labels=rows)``) drives it: ``call(x, t, rows)`` unpacks the rows and calls the UNet. ``config`` is the
    wrapped UNet's (the core reads ``in_channels`` and ``block_out_channels``)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    @property
    def config(self):
        return self.unet.config

    def forward(self, sample, timestep, encoder_hidden_states=None, class_labels=None, **kwargs):
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        return UNet2DConditionOutput(sample=self.call(sample, timestep, class_labels))

    def call(self, sample: torch.Tensor, timestep, rows: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def save_pretrained(self, *args, **kwargs):
        raise InputError(
            f"{type(self).__name__}: a model of this family stays in its own folder format (tta.families); "
            "copy its folder instead of saving the pipeline"
        )
