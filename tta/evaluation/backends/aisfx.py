"""aiSFX (Ma & Lerch, "Representation Learning for the Automatic Indexing of Sound Effects Libraries", ISMIR 2022)
as an embedding backend: a 4.7 M-parameter CNN trained on professional sound-effects libraries (UCS categories),
so a judge that never saw tta's corpus, CLAP or text space.

Weights: the ``models/checkpoint.pth`` of the ``aisfx`` 0.1.2 wheel (MIT; ``pip install --no-deps aisfx==0.1.2``:
its numpy 1.23 / librosa 0.9.2 pins are not needed, as nothing of the package is imported), or a file given with
``--backend-weights``. The checkpoint is a pickle of ``(state_dict, {dataset: (index, classes)})`` whose dataset
indices are numpy scalars; it is read with ``torch.load(weights_only=True)`` allowing only numpy's ``scalar``
reconstructor and integer dtype classes (no pickled code runs), and the embedding network's weights are written
once to ``<tta cache>/aisfx/embedding_net-<sha>.safetensors``, which later runs read.

Why re-implemented (``AisfxNet``, 40 lines) rather than imported: the package's modules import its 2022
dependencies at run time (librosa for its alternative front end; Essentia, AGPL, for the paper's), and like the
VGGish and PANNs backends the network is small enough to own; the test checks ours against the package's own
inference code (``tests/evaluation/test_aisfx.py``, to 1e-5).

Front end, as the paper's code (``aisfx.inference`` with its default Essentia spectrogram): audio at 44.1 kHz;
frames of 2048 samples every 1024, the first centred on sample 0 (Essentia's ``FrameCutter``: half a frame of
zeros before the clip, and frames until one is centred at or past its end); a symmetric Hann window; power
spectrum; 96 HTK-mel bands from 0 to 22050 Hz, triangles in mel, each band's weights summing to one (Essentia's
``MelBands``, ``unit_sum``); ``log10(1 + 10^4 x)``, divided by the paper's normalisation constant 9.4578 (its
maximum over all training spectrograms). The log-mel is cut into blocks of 100 frames (2.3 s) every 50 (1.16 s,
the paper's embedding hop of half a block), a last partial block dropped; a clip shorter than one block is
zero-padded to one. Level matters: as in the paper the waveform is not normalised.

Network (``EmbeddingNet('max', 3, 1, 64)``, the DCASE 2018 cross-task baseline CNN): four blocks of two 3x3
conv + batch-norm + ReLU (64, 128, 256, 512 channels), 2x2 max-pooling after the first three; mean over
frequency, max over time -> 512 dimensions per block. The checkpoint's classifier heads (one per training
library, unnamed classes) are not used; the classifier over tta's classes is a linear probe
(:mod:`tta.evaluation.probe`) trained on the corpus, used when one has been trained (``benchmarks/aisfx_probe.py``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tta.errors import InputError, ModelLoadError
from tta.evaluation.backends.base import ClipFeatures, EmbeddingBackend, file_sha256, load_into, module_hash

SAMPLE_RATE = 44100
FRAME, HOP = 2048, 1024  # aisfx.inference SPEC_BLOCK_LENGTH, SPEC_HOP_LENGTH
N_MELS = 96
F_MIN, F_MAX = 0.0, 22050.0
LOG_SCALE = 1e4  # Essentia's shift_scale_log: log10(1e4 x + 1)
NORM_MAX = 9.457798957824707  # aisfx.preprocessing.spectrogram_normalize('original'): the paper's max, min 0
BLOCK_FRAMES, BLOCK_HOP = 100, 50  # aisfx.inference EMB_BLOCK_LENGTH, emb_hop_size 0.5
EMBEDDING_DIM = 512
PUBLISHED = "models/checkpoint.pth of the aisfx 0.1.2 wheel (pip install --no-deps aisfx==0.1.2)"


def htk_mel(hz):
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def aisfx_mel_matrix() -> np.ndarray:
    """[FRAME // 2 + 1, 96]: triangles equally spaced in HTK mel, weights of each band summing to 1."""
    bins = htk_mel(np.arange(FRAME // 2 + 1) * (SAMPLE_RATE / FRAME))
    edges = np.linspace(htk_mel(F_MIN), htk_mel(F_MAX), N_MELS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(
        0.0, np.minimum((bins[:, None] - lower) / (center - lower), (upper - bins[:, None]) / (upper - center))
    )
    return weights / weights.sum(axis=0, keepdims=True)


def aisfx_logmel(wav: np.ndarray) -> torch.Tensor:
    """Waveform [N] at 44.1 kHz -> normalised log-mel [T, 96], float64, T = ceil(N / 1024) + 1."""
    x = torch.as_tensor(np.asarray(wav, np.float64).reshape(-1))
    n_frames = -(-x.numel() // HOP) + 1
    x = F.pad(x, (FRAME // 2, (n_frames - 1) * HOP + FRAME // 2 - x.numel()))
    frames = x.unfold(0, FRAME, HOP)[:n_frames]  # [T, 2048]
    window = 0.5 - 0.5 * torch.cos(2 * torch.pi * torch.arange(FRAME, dtype=torch.float64) / (FRAME - 1))
    power = torch.fft.rfft(frames * window).abs() ** 2  # [T, 1025]
    mel = power @ torch.from_numpy(aisfx_mel_matrix())  # [T, 96]
    return torch.log10(1.0 + LOG_SCALE * mel) / NORM_MAX


def aisfx_blocks(spec: torch.Tensor) -> torch.Tensor:
    """Log-mel [T, 96] -> blocks [B, 100, 96] every 50 frames (a last partial block dropped; B >= 1)."""
    if spec.shape[0] < BLOCK_FRAMES:
        return F.pad(spec, (0, 0, 0, BLOCK_FRAMES - spec.shape[0]))[None]
    return spec.unfold(0, BLOCK_FRAMES, BLOCK_HOP).transpose(1, 2)


class ConvBlock(nn.Module):
    """Two 3x3 conv + batch-norm + ReLU, then max-pooling; [B, C_in, T, F] -> [B, C_out, T / p, F / p]."""

    def __init__(self, in_channels: int, out_channels: int, pool: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.max_pool2d(x, self.pool) if self.pool > 1 else x


class AisfxNet(nn.Module):
    """Blocks [B, 100, 96] -> embeddings [B, 512] (the checkpoint's ``embedding_net``)."""

    def __init__(self, width: int = 64):
        super().__init__()
        widths = [1, width, 2 * width, 4 * width, 8 * width]
        for i in range(4):
            self.add_module(f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1], pool=2 if i < 3 else 1))

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        x = blocks[:, None]  # [B, 1, T, F]
        for i in range(4):
            x = getattr(self, f"conv_block{i + 1}")(x)
        return x.mean(dim=3).amax(dim=2)  # mean over frequency, max over time


def package_checkpoint() -> Path | None:
    """The installed aisfx wheel's checkpoint (found without importing the package), or None."""
    loaded = sys.modules.get("aisfx")
    folders = list(getattr(loaded, "__path__", None) or [])
    if not folders:
        try:
            spec = importlib.util.find_spec("aisfx")
        except (ImportError, ValueError):
            spec = None
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0]) / "models" / "checkpoint.pth" if folders else None
    return path if path is not None and path.is_file() else None


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(state_dict, datasets)`` of the package's pickle, with only numpy scalars and dtypes allowed."""
    core = getattr(np, "_core", None) or np.core
    allowed = [(core.multiarray.scalar, "numpy.core.multiarray.scalar"), core.multiarray.scalar, np.dtype]
    allowed += [type(np.dtype(t)) for t in ("int64", "int32", "float64", "float32")]
    try:
        with torch.serialization.safe_globals(allowed):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        state, datasets = obj
    except Exception as err:
        raise ModelLoadError(f"cannot read aisfx checkpoint {path}: {str(err).strip().splitlines()[0]}") from err
    return dict(state), {str(k): [int(i), int(n)] for k, (i, n) in dict(datasets).items()}


def converted_weights(source: str | os.PathLike, cache: str | os.PathLike | None = None) -> Path:
    """The embedding network of checkpoint ``source`` as safetensors in the tta cache (written on first use)."""
    from safetensors.torch import save_file

    from tta.paths import cache_dir

    digest = file_sha256(source)
    out = Path(cache if cache is not None else cache_dir() / "aisfx") / f"embedding_net-{digest[:16]}.safetensors"
    if out.is_file():
        return out
    state, datasets = read_checkpoint(source)
    prefix = "embedding_net."
    net = {k[len(prefix) :]: v.contiguous() for k, v in state.items() if k.startswith(prefix)}
    if not net:
        raise ModelLoadError(f"{source} has no embedding_net.* weights: not an aisfx checkpoint")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    save_file(net, str(tmp), metadata={"source_sha256": digest, "datasets": json.dumps(datasets)})
    os.replace(tmp, out)
    return out


def load_aisfx_net(weights: str | os.PathLike | None = None) -> tuple[AisfxNet, str]:
    """``(AisfxNet, weights hash)`` from a checkpoint.pth or converted .safetensors (None: the installed wheel's)."""
    from safetensors.torch import load_file

    path = Path(weights).expanduser() if weights is not None else package_checkpoint()
    if path is None:
        raise InputError(f"backend 'aisfx' needs its weights: {PUBLISHED}, or --backend-weights FILE")
    if not path.is_file():
        raise ModelLoadError(f"--backend-weights {path}: no such file (backend 'aisfx' expects {PUBLISHED})")
    converted = path if path.suffix == ".safetensors" else converted_weights(path)
    model = AisfxNet()
    load_into(model, load_file(str(converted)), path, "aisfx")
    return model.eval(), file_sha256(converted)


class AisfxBackend(EmbeddingBackend):
    """``--backend aisfx``: frames [B, 512], one per 2.3 s block every 1.16 s; logits from the linear probe over
    tta's classes when one is found (``probe``: a :class:`LinearProbe` or its file; None: the default file,
    :func:`tta.evaluation.probe.default_probe_path`, if there is one; False: none)."""

    name = "aisfx"
    sample_rate = SAMPLE_RATE

    def __init__(self, weights=None, device: str = "cpu", model: AisfxNet | None = None, probe=None):
        from tta.evaluation.probe import LinearProbe, default_probe_path

        if model is None:
            model, self.weights_hash = load_aisfx_net(weights)
        else:
            self.weights_hash = module_hash(model)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if probe is None and default_probe_path(self.weights_hash).is_file():
            probe = default_probe_path(self.weights_hash)
        self.probe = LinearProbe.load(probe) if isinstance(probe, (str, os.PathLike)) else (probe or None)
        if self.probe is not None:
            self.classifier = "linear probe on aisfx embeddings over tta.data.captions.CLASSES (corpus train split)"
            self.class_names = list(self.probe.classes)
            self.weights_hash += "-probe-" + self.probe.digest()[:12]

    @torch.no_grad()
    def embed_blocks(self, wav: np.ndarray) -> np.ndarray:
        """Waveform [N] at 44.1 kHz -> block embeddings [B, 512], float32."""
        blocks = aisfx_blocks(aisfx_logmel(wav)).float().to(self.device)
        return self.model(blocks).cpu().numpy().astype(np.float32)

    def clip_embedding(self, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """One clip's embedding [512]: the mean of its block embeddings (resampled to 44.1 kHz first)."""
        from tta.audio.io import resample

        wav = np.asarray(wav, np.float32).reshape(-1)
        if sample_rate != SAMPLE_RATE:
            wav = resample(wav, sample_rate, SAMPLE_RATE)
        return self.embed_blocks(wav).mean(axis=0)

    def rank_classes(self, audio, classes, sample_rate: int = 16000) -> np.ndarray:
        """[N, C]: per clip (waveforms [N_i] at ``sample_rate``), indices into ``classes`` by the probe, best first."""
        if self.probe is None:
            raise InputError("the aisfx judge needs a linear probe: run benchmarks/aisfx_probe.py to train one")
        emb = np.stack([self.clip_embedding(np.asarray(a, np.float32), sample_rate) for a in audio])
        return self.probe.rank(emb, classes)

    def features(self, wav: np.ndarray) -> ClipFeatures:
        frames = self.embed_blocks(wav)
        logits = None if self.probe is None else self.probe.logits(frames.mean(axis=0, keepdims=True))[0]
        return ClipFeatures(frames, logits)
