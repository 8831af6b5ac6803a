"""MusicLDM (diffusers ``MusicLDMPipeline`` folders): AudioLDM 1's conditioning (the L2-normalised CLAP text
embedding through the UNet's class embedding, FiLM), with a full CLAP (text and audio towers) trained on music.

Folder (``MusicLDMPipeline.save_pretrained``): ``model_index.json`` (``_class_name: MusicLDMPipeline``),
``text_encoder/`` (transformers ``ClapModel``), ``tokenizer/`` (RoBERTa), ``feature_extractor/``
(``ClapFeatureExtractor``), ``unet/`` (``UNet2DConditionModel`` with ``class_embed_type: simple_projection``),
``vae/``, ``vocoder/`` (``SpeechT5HifiGan``), ``scheduler/``.

The condition is the one tta's AudioLDM 1 path computes (:class:`~tta.models.clap.hf.HFClap`), so the pipeline
runs it with no adapter; the folder's own CLAP also ranks candidates.
"""

from __future__ import annotations

from pathlib import Path

from tta.families.common import (
    DIFFUSERS_WEIGHTS,
    OPTS,
    TRANSFORMERS_WEIGHTS,
    check_files,
    expect,
    load,
    load_tokenizer,
    read_json,
)

CLASS_NAME = "MusicLDMPipeline"
COMPONENTS = {
    "text_encoder": TRANSFORMERS_WEIGHTS,
    "unet": DIFFUSERS_WEIGHTS,
    "vae": DIFFUSERS_WEIGHTS,
    "vocoder": TRANSFORMERS_WEIGHTS,
}
FEATURE_EXTRACTOR = "feature_extractor/preprocessor_config.json"


def check_folder(folder: Path) -> None:
    """Every file a MusicLDM folder needs, before anything loads."""
    check_files(folder, COMPONENTS, tokenizers=("tokenizer",))
    read_json(folder / "scheduler" / "scheduler_config.json")
    read_json(folder / FEATURE_EXTRACTOR)
    model_type = read_json(folder / "text_encoder" / "config.json").get("model_type")
    expect(model_type == "clap", folder / "text_encoder" / "config.json", f"model_type {model_type!r}, not 'clap'")


def load_folder(folder: Path):
    """The :class:`~tta.loading.Components` of a MusicLDM folder (CPU, eval mode, no network)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import ClapFeatureExtractor, ClapModel, SpeechT5HifiGan

    from tta.loading import Components
    from tta.models.clap.hf import HFClap

    check_folder(folder)
    clap_model = load(folder / "text_encoder", ClapModel.from_pretrained, str(folder / "text_encoder"), **OPTS)
    fe_dir = folder / "feature_extractor"
    fe = load(fe_dir, ClapFeatureExtractor.from_pretrained, str(fe_dir), local_files_only=True)
    clap = HFClap(clap_model, load_tokenizer(folder / "tokenizer"), fe)
    unet = load(folder / "unet", UNet2DConditionModel.from_pretrained, str(folder / "unet"), **OPTS)
    expect(
        unet.config.projection_class_embeddings_input_dim == clap.embedding_dim, folder / "unet" / "config.json",
        f"projection_class_embeddings_input_dim {unet.config.projection_class_embeddings_input_dim} does not "
        f"match the CLAP's projection_dim {clap.embedding_dim} (text_encoder/config.json)",
    )  # fmt: skip
    vae = load(folder / "vae", AutoencoderKL.from_pretrained, str(folder / "vae"), **OPTS)
    vocoder = load(folder / "vocoder", SpeechT5HifiGan.from_pretrained, str(folder / "vocoder"), **OPTS)
    scheduler = read_json(folder / "scheduler" / "scheduler_config.json")
    for module in (unet, vae, vocoder, clap):
        module.eval()
    return Components(unet, vae, vocoder, clap, scheduler, CLASS_NAME, {}, None)
