"""Training examples of the latent diffusion stage, encoded once and read back: VAE latents + CLAP audio embeddings.

The VAE encoder costs about as much as a step of the small UNet on a CPU, so the LDM stage encodes each
augmented crop once and reuses it. ``CorpusDataset`` is deterministic for a (seed, epoch): epoch ``e`` of the
corpus with its crops, gains and augmentations is one *slot*; training epoch ``k`` reads slot ``k % slots``, so
every crop is seen ``epochs / slots`` times with the same augmentation instead of once. Each slot is one
safetensors file in the run folder, written atomically the first time it is needed (with a progress bar) and
keyed by a fingerprint of everything that made it (VAE and CLAP weights, data settings): a changed VAE or
setting rebuilds the slot instead of training on stale latents.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset


class LatentCache(Dataset):
    """A dataset over cached slots of ``source`` (see the module docstring).

    Args:
        source: a dataset with ``set_epoch(e)`` whose items are dicts with ``"caption"``.
        encode: items of ``source`` -> ``{"latents": [B, C, H, W], "audio_emb": [B, D]}`` (float; stored as
            float16). Called on ``batch_size`` items at a time, with a generator seeded by the slot.
        folder: where the slot files go.
        slots: distinct epochs cached (training epoch ``k`` reads slot ``k % slots``).
        fingerprint: a string naming what made the latents; a slot written under another one is rebuilt.
        batch_size: items encoded at a time.
        progress: show a progress bar while a slot is built.
    """

    def __init__(
        self,
        source,
        encode: Callable[[list[dict], torch.Generator], dict[str, torch.Tensor]],
        folder: str | os.PathLike,
        slots: int,
        fingerprint: str,
        batch_size: int = 16,
        progress: bool = True,
    ):
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self.source = source
        self.encode = encode
        self.folder = Path(folder)
        self.slots = int(slots)
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        self.progress = progress
        self.slot: int | None = None
        self.tensors: dict[str, torch.Tensor] = {}
        self.captions: list[str] = []
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.source)

    def path(self, slot: int) -> Path:
        return self.folder / f"slot_{slot:03d}.safetensors"

    def set_epoch(self, epoch: int) -> None:
        slot = int(epoch) % self.slots
        if slot != self.slot:
            self.tensors, self.captions, self.ids = self._load(slot) or self._build(slot)
            self.slot = slot

    def __getitem__(self, i: int) -> dict:
        if self.slot is None:
            self.set_epoch(0)
        return {
            "latents": self.tensors["latents"][i].float(),
            "audio_emb": self.tensors["audio_emb"][i].float(),
            "caption": self.captions[i],
            "id": self.ids[i],
        }

    def _load(self, slot: int):
        path = self.path(slot)
        if not path.is_file():
            return None
        try:
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            if meta.get("fingerprint") != self.fingerprint or int(meta.get("items", -1)) != len(self):
                print(f"latent cache {path.name} was made with other settings or weights: rebuilding it")
                return None
            return load_file(str(path)), json.loads(meta["captions"]), json.loads(meta["ids"])
        except (SafetensorError, OSError, KeyError, ValueError, json.JSONDecodeError) as err:
            print(f"latent cache {path} is unreadable ({err}): rebuilding it")
            return None

    @torch.no_grad()
    def _build(self, slot: int):
        from tqdm.auto import tqdm

        self.source.set_epoch(slot)
        g = torch.Generator().manual_seed(1_000_003 + slot)
        parts: dict[str, list[torch.Tensor]] = {}
        captions: list[str] = []
        ids: list[str] = []
        n = len(self.source)
        bar = tqdm(total=n, desc=f"encoding latent cache slot {slot}", unit="crop", disable=not self.progress)
        for start in range(0, n, self.batch_size):
            items = [self.source[i] for i in range(start, min(n, start + self.batch_size))]
            for key, value in self.encode(items, g).items():
                parts.setdefault(key, []).append(value.detach().to("cpu", torch.float16))
            captions.extend(it["caption"] for it in items)
            ids.extend(str(it.get("id", "")) for it in items)
            bar.update(len(items))
        bar.close()
        tensors = {k: torch.cat(v).contiguous() for k, v in parts.items()}
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(slot)
        tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
        meta = {
            "fingerprint": self.fingerprint,
            "items": str(n),
            "captions": json.dumps(captions),
            "ids": json.dumps(ids),
        }
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
        return tensors, captions, ids
