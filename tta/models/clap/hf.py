"""CLAP backends on transformers: the full ``ClapModel`` (LAION-CLAP) and its text tower alone.

Text embeddings are computed exactly as diffusers' AudioLDM pipeline does: RoBERTa tokens (truncated to the
tokenizer's ``model_max_length``) with their attention mask -> text tower -> ``text_projection`` of the pooled
first token -> L2 normalisation. Texts are padded to the longest in the batch rather than to 512 tokens: padded
positions are masked out, so the embedding is the same and the encoder runs on far fewer tokens.

Folder layouts read by ``from_pretrained``:

* ``HFClap``: a transformers ``ClapModel`` folder (``config.json`` with ``model_type: clap``,
  ``model.safetensors``) holding the tokenizer files and ``preprocessor_config.json`` (``ClapProcessor``), or
  with them in a ``tokenizer/`` sub-folder.
* ``HFClapText``: a ``ClapTextModelWithProjection`` folder (diffusers AudioLDM's ``text_encoder/``) with the
  tokenizer in ``<folder>/tokenizer/``, in ``<folder>/../tokenizer/`` (diffusers layout), or in the folder itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tta.errors import ModelLoadError
from tta.models.clap.base import ClapEncoder

WEIGHTS_NAME = "model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")


def _check_model_folder(folder: Path) -> None:
    for name in ("config.json", WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise ModelLoadError(f"CLAP folder {folder} is missing {name}")


def _find_tokenizer_dir(folder: Path) -> Path:
    for candidate in (folder / "tokenizer", folder.parent / "tokenizer", folder):
        if any((candidate / name).is_file() for name in TOKENIZER_FILES):
            return candidate
    raise ModelLoadError(
        f"no tokenizer found for CLAP folder {folder} (looked in tokenizer/, ../tokenizer/ and itself)"
    )


def _load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:
        raise ModelLoadError(f"cannot load the CLAP tokenizer from {folder}: {err}") from err


def _load_hf_model(cls, folder: Path):
    _check_model_folder(folder)
    try:
        return cls.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
    except Exception as err:
        raise ModelLoadError(f"cannot load {cls.__name__} from {folder}: {err}") from err


class _HFTextMixin:
    """Shared text path: tokenizer + text tower + projection, as diffusers AudioLDM computes it."""

    tokenizer = None

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        if isinstance(texts, str):
            texts = [texts]
        inputs = self.tokenizer(
            list(texts),
            padding="longest",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return {
            "input_ids": inputs["input_ids"].to(self.device),
            "attention_mask": inputs["attention_mask"].to(self.device),
        }

    def _project_text(self, text_model, projection, texts: list[str]) -> torch.Tensor:
        inputs = self._tokenize(texts)
        pooled = text_model(**inputs).pooler_output  # [B, hidden]
        return F.normalize(projection(pooled).float(), dim=-1)  # [B, D]


class HFClap(_HFTextMixin, ClapEncoder):
    """A transformers ``ClapModel`` (text and audio towers) with its tokenizer and feature extractor.

    ``encode_audio`` takes 16 kHz audio and resamples it to the feature extractor's rate (48 kHz for LAION-CLAP).
    """

    has_audio = True

    def __init__(self, model, tokenizer, feature_extractor):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.feature_extractor = feature_extractor
        self.embedding_dim = int(model.config.projection_dim)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> HFClap:
        from transformers import ClapFeatureExtractor, ClapModel

        folder = Path(folder)
        model = _load_hf_model(ClapModel, folder)
        tokenizer = _load_tokenizer(_find_tokenizer_dir(folder))
        fe_dir = next(
            (d for d in (folder, folder / "tokenizer") if (d / "preprocessor_config.json").is_file()),
            None,
        )
        if fe_dir is None:
            raise ModelLoadError(f"CLAP folder {folder} is missing preprocessor_config.json (the feature extractor)")
        try:
            feature_extractor = ClapFeatureExtractor.from_pretrained(str(fe_dir), local_files_only=True)
        except Exception as err:
            raise ModelLoadError(f"cannot load the CLAP feature extractor from {fe_dir}: {err}") from err
        return cls(model, tokenizer, feature_extractor).eval()

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        self.model.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder / "tokenizer"))
        self.feature_extractor.save_pretrained(str(folder))

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """list of B strings -> [B, D], L2-normalised."""
        return self._project_text(self.model.text_model, self.model.text_projection, texts)

    @torch.no_grad()
    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] at 16 kHz -> [B, D], L2-normalised."""
        from tta.audio.io import resample

        audio = torch.as_tensor(audio)
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        rate = int(self.feature_extractor.sampling_rate)
        waves = [resample(w.detach().float().cpu().numpy(), self.sample_rate, rate) for w in audio]
        state = np.random.get_state()  # clips past the extractor's window: its "fusion" picks chunks by np.random
        np.random.seed(0)  # so the same clip always gets the same embedding
        try:
            features = self.feature_extractor(waves, sampling_rate=rate, return_tensors="pt")
        finally:
            np.random.set_state(state)
        kwargs = {"input_features": features["input_features"].to(self.device)}
        if "is_longer" in features:
            kwargs["is_longer"] = features["is_longer"].to(self.device)
        pooled = self.model.audio_model(**kwargs).pooler_output  # [B, hidden]
        return F.normalize(self.model.audio_projection(pooled).float(), dim=-1)


class HFClapText(_HFTextMixin, ClapEncoder):
    """The CLAP text tower alone (``ClapTextModelWithProjection``), as in diffusers AudioLDM folders.

    Text only: ``has_audio`` is False and ``encode_audio`` raises :class:`ModelLoadError`.
    """

    has_audio = False

    def __init__(self, text_model, tokenizer):
        super().__init__()
        self.text_model = text_model
        self.tokenizer = tokenizer
        self.embedding_dim = int(text_model.config.projection_dim)

    @classmethod
    def from_pretrained(
        cls, folder: str | os.PathLike, tokenizer_folder: str | os.PathLike | None = None
    ) -> HFClapText:
        """Load ``folder`` (text tower) and its tokenizer (``tokenizer_folder``, else searched beside it)."""
        from transformers import ClapTextModelWithProjection

        folder = Path(folder)
        model = _load_hf_model(ClapTextModelWithProjection, folder)
        tok_dir = Path(tokenizer_folder) if tokenizer_folder is not None else _find_tokenizer_dir(folder)
        return cls(model, _load_tokenizer(tok_dir)).eval()

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        self.text_model.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder / "tokenizer"))

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """list of B strings -> [B, D], L2-normalised (diffusers AudioLDM's ``prompt_embeds``)."""
        return self._project_text(self.text_model.text_model, self.text_model.text_projection, texts)

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        raise ModelLoadError(
            "this CLAP is a text tower only (a diffusers AudioLDM text_encoder) and cannot embed audio; "
            "load a full CLAP for audio embeddings or re-ranking (e.g. load_clap(<ClapModel folder>))"
        )
