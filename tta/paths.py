"""Where tta looks for things on disk."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_model_dir() -> Path:
    """The default model folder: ``$TTA_MODEL`` if set, else ``checkpoints/`` next to the package."""
    env = os.environ.get("TTA_MODEL")
    return Path(env).expanduser() if env else REPO_ROOT / "checkpoints"


def default_clap_dir() -> Path:
    """The default CLAP folder: ``$TTA_CLAP`` if set, else ``<default model>/clap``."""
    env = os.environ.get("TTA_CLAP")
    return Path(env).expanduser() if env else default_model_dir() / "clap"


def cache_dir() -> Path:
    """Cache root for corpora, embeddings and downloads: ``$TTA_CACHE`` or ``~/.cache/tta``."""
    env = os.environ.get("TTA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tta"
