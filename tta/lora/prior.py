"""The conditioning side of a fine-tune: a retrieval index of the same captioned folder, written beside the
adapter (``ADAPTER.index/``), so that the model's retrieval prior also searches the new recordings.

``pipe(prompt, retrieval=INDEX)`` (``tta generate --retrieval INDEX``) extends the model's own prior with the
index's entries for that call (:func:`tta.pipelines.conditioning.resolve_conditioning`); the model folder and
its ``prior/`` are left untouched, so one base model serves every adapter.
"""

from __future__ import annotations

import os
from pathlib import Path

from tta.errors import InputError


def index_path_for(adapter: str | os.PathLike) -> Path:
    """Where the index of an adapter's folder goes: ``NAME.index/`` beside ``NAME.safetensors``."""
    adapter = Path(adapter)
    return adapter.with_name(adapter.stem + ".index")


def write_folder_index(pipe, entries: list[dict], out: str | os.PathLike, progress: bool = True) -> Path:
    """Embed ``entries`` (from :func:`tta.retrieval.sources.folder_entries`) with ``pipe``'s CLAP and VAE and
    save the index at ``out``; a folder none of whose recordings can be read is an :class:`InputError`."""
    from tta.retrieval.build import build_index

    index, report = build_index(entries, pipe, pipe.clap_fingerprint, progress=progress)
    if len(index) == 0:
        raise InputError(f"none of the {len(entries)} recordings could be embedded for the retrieval index")
    return index.save(out, extra_info={"made_for": "tta finetune", "base_model_hash": pipe.model_hash})
