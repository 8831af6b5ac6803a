"""The one place that reads omegaconf configs and turns them into constructor keyword arguments.

Building blocks (models, trainers) take plain kwargs; a YAML key is always a constructor argument name.
A training config names its stage's keyword arguments at the top level and the model's constructor
arguments under ``model:`` (merged over the model config file, e.g. ``configs/model/clap.yaml``).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from tta.errors import InputError

# training stage -> "module:Trainer subclass"; imported on demand.
TRAINERS: dict[str, str] = {
    "clap": "tta.training.clap:ClapTrainer",
    "vae": "tta.training.vae:VaeTrainer",
    "vocoder": "tta.training.vocoder:VocoderTrainer",
    "ldm": "tta.training.ldm:LdmTrainer",
    "distill": "tta.training.distill:DistillTrainer",
}


def load_config(*files: str | os.PathLike | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Merge YAML files left to right, then ``key.sub=value`` overrides; returns a plain resolved dict."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    parts = []
    for f in files:
        if f is None:
            continue
        path = Path(f)
        if not path.is_file():
            raise InputError(f"config file not found: {path}")
        try:
            parts.append(OmegaConf.load(path))
        except Exception as err:  # yaml.YAMLError and omegaconf errors
            raise InputError(f"cannot parse config {path}: {err}") from err
    try:
        if overrides:
            parts.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(*parts) if parts else OmegaConf.create({})
        return OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as err:
        raise InputError(f"bad config override or interpolation: {err}") from err


def trainer_class(stage: str) -> type:
    if stage not in TRAINERS:
        raise InputError(f"unknown training stage {stage!r}; known: {', '.join(sorted(TRAINERS))}")
    module, cls = TRAINERS[stage].split(":")
    return getattr(importlib.import_module(module), cls)


def build_trainer(
    stage: str,
    train_config: str | os.PathLike | None,
    model_config: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    **runtime: Any,
):
    """Build a stage's Trainer: ``model`` = model config merged with the train config's ``model:`` section;
    the other train-config keys, then ``runtime`` kwargs (paths given on the command line), are its arguments.
    """
    config = load_config(train_config, overrides=overrides)
    model = load_config(model_config) if model_config else {}
    model.update(config.pop("model", None) or {})
    config.update({k: v for k, v in runtime.items() if v is not None})
    config["model"] = model
    cls = trainer_class(stage)
    try:
        return cls(**config, run_config=dict(config))
    except TypeError as err:
        raise InputError(f"bad {stage} training config: {err}") from err
