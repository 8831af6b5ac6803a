"""The frozen parts the latent diffusion stage trains against (VAE, vocoder, CLAP, a retrieval index), and the
export of a whole model folder around the trained UNet."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tta.errors import InputError


@dataclass
class FrozenParts:
    """The trained, frozen components of ``folder`` (eval mode, no gradients), and the retrieval index if any."""

    folder: Path
    vae: object
    vocoder: object
    clap: object
    index: object | None = None


def load_frozen_parts(folder: str | os.PathLike, n_mels: int, retrieval: str | os.PathLike | None = None):
    """``vae/``, ``vocoder/`` and ``clap/`` of ``folder`` (and the index at ``retrieval``), checked against each
    other and against the ``n_mels`` mel bins of the training front-end."""
    from tta.loading import clap_fingerprint, load_vae, load_vocoder
    from tta.models.clap import load_clap
    from tta.models.vae import latent_grid

    folder = Path(folder)
    vae = load_vae(folder).requires_grad_(False)
    vocoder = load_vocoder(folder).requires_grad_(False)
    clap = load_clap(folder / "clap").requires_grad_(False)
    if vocoder.config.model_in_dim != n_mels:
        raise InputError(
            f"the vocoder in {folder} takes {vocoder.config.model_in_dim} mel bins; the mel front-end makes {n_mels}"
        )
    index = None
    if retrieval is not None:
        from tta.retrieval import RetrievalIndex

        index = RetrievalIndex.load(retrieval)
        grid = latent_grid(vae, n_mels)
        index.check_compatible(clap_fingerprint(folder / "clap"), clap.embedding_dim, grid, f"retrieval {retrieval}")
    return FrozenParts(folder, vae, vocoder, clap, index)


def export_ldm(folder: Path, unet, parts: FrozenParts, noise_schedule: dict, sampling_defaults: dict) -> None:
    """A complete model folder (``unet`` + the frozen VAE, vocoder and CLAP + the noise schedule) that
    ``TTAPipeline.from_pretrained`` and ``tta generate --model`` load."""
    from tta.loading import save_components
    from tta.models.clap import backend_name

    save_components(
        folder,
        unet,
        parts.vae,
        parts.vocoder,
        parts.clap,
        noise_schedule,
        backend_name(parts.clap),
        sampling_defaults,
    )
