"""Import the original AudioLDM code (the ``audioldm==0.1.1`` wheel) without running its package ``__init__``.

The wheel's ``audioldm/__init__.py`` pulls in the whole inference stack (torchaudio, progressbar, the CLAP
training code), none of which the modules we compare against need. :func:`original` registers an empty
``audioldm`` package pointing at the installed folder, stubs ``progressbar`` (only imported by
``audioldm.utils`` for its download bar) and returns the requested submodule. Tests call
:func:`require_audioldm` first: it skips them with a reason when the wheel is absent
(CI: ``pip install --no-deps audioldm==0.1.1``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

_PACKAGES = ("audioldm", "audioldm.latent_diffusion", "audioldm.variational_autoencoder", "audioldm.audio")


def audioldm_dir() -> Path | None:
    """The installed ``audioldm`` package folder, or None (found without importing the package)."""
    loaded = sys.modules.get("audioldm")
    if loaded is not None and getattr(loaded, "__path__", None):
        return Path(list(loaded.__path__)[0])
    try:
        spec = importlib.util.find_spec("audioldm")
    except (ImportError, ValueError):  # a broken or blocked installation counts as absent
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def require_audioldm() -> Path:
    """Skip the calling test unless the original AudioLDM code is installed."""
    root = audioldm_dir()
    if root is None:
        pytest.skip("original AudioLDM code not installed (pip install --no-deps audioldm==0.1.1)")
    return root


def _stub_package(name: str, folder: Path) -> None:
    if name in sys.modules and getattr(sys.modules[name], "__path__", None) is not None:
        return
    module = types.ModuleType(name)
    module.__path__ = [str(folder)]
    module.__package__ = name
    sys.modules[name] = module


def original(name: str) -> types.ModuleType:
    """Import ``audioldm.<name>`` (e.g. ``"latent_diffusion.openaimodel"``) with stub parent packages."""
    root = require_audioldm()
    if "progressbar" not in sys.modules and importlib.util.find_spec("progressbar") is None:
        sys.modules["progressbar"] = types.ModuleType("progressbar")  # audioldm.utils imports it for downloads
    for package in _PACKAGES:
        _stub_package(package, root.joinpath(*package.split(".")[1:]))
    # audioldm/hifigan/__init__.py is harmless (imports .models only): that package imports normally.
    return importlib.import_module(f"audioldm.{name}")


def tacotron_stft(**kwargs) -> torch.nn.Module:
    """The original ``TacotronSTFT``.

    Its positional calls into ``librosa.filters.mel`` and ``librosa.util.pad_center`` predate librosa 0.10
    (keyword-only since): the module's references are pointed at keyword-calling wrappers.
    """
    import librosa

    stft = original("audio.stft")
    stft.librosa_mel_fn = lambda sr, n_fft, n_mels, fmin, fmax: librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax
    )
    stft.pad_center = lambda data, size: librosa.util.pad_center(data, size=size)
    return stft.TacotronSTFT(**kwargs)


def audio_tools() -> types.ModuleType:
    """The original ``audioldm.audio.tools`` (``normalize_wav``, ``_pad_spec``...).

    It imports torchaudio at module level for its file reader only; when torchaudio is absent an empty
    stand-in is registered just for the import.
    """
    if "audioldm.audio.tools" in sys.modules:
        return sys.modules["audioldm.audio.tools"]
    stubbed = importlib.util.find_spec("torchaudio") is None
    if stubbed:
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    try:
        return original("audio.tools")
    finally:
        if stubbed:
            del sys.modules["torchaudio"]


class _Identity(torch.nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


def htsat() -> types.ModuleType:
    """The original ``audioldm.clap.open_clip.htsat`` (the CLAP audio branch).

    Its front-end comes from torchlibrosa and ``open_clip/utils.py`` imports torchvision; where they are absent,
    stand-ins are registered just for the import (identity front-end modules: callers feed log-mels, and
    replace the front-end with ``nn.Identity`` anyway).
    """
    if "audioldm.clap.open_clip.htsat" in sys.modules:
        return sys.modules["audioldm.clap.open_clip.htsat"]
    root = require_audioldm()
    original("utils")  # stubs the parent package and progressbar
    stubs: dict[str, types.ModuleType] = {}
    if importlib.util.find_spec("torchlibrosa") is None:
        stft, augmentation = types.ModuleType("torchlibrosa.stft"), types.ModuleType("torchlibrosa.augmentation")
        stft.Spectrogram = stft.LogmelFilterBank = augmentation.SpecAugmentation = _Identity
        stubs.update({"torchlibrosa": types.ModuleType("torchlibrosa"), "torchlibrosa.stft": stft})
        stubs["torchlibrosa.augmentation"] = augmentation
    if importlib.util.find_spec("torchvision") is None:
        misc = types.ModuleType("torchvision.ops.misc")
        misc.FrozenBatchNorm2d = torch.nn.BatchNorm2d
        stubs.update({"torchvision": types.ModuleType("torchvision"), "torchvision.ops": types.ModuleType("x")})
        stubs["torchvision.ops.misc"] = misc
    sys.modules.update(stubs)
    try:
        _stub_package("audioldm.clap", root / "clap")
        _stub_package("audioldm.clap.open_clip", root / "clap" / "open_clip")
        return importlib.import_module("audioldm.clap.open_clip.htsat")
    finally:
        for name in stubs:
            sys.modules.pop(name, None)
