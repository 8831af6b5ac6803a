"""The AudioLDM family beyond AudioLDM 1: one module per family, each giving folder checks and offline loading,
a text encoder that turns prompts into that family's condition rows, and a UNet adapter so the pipeline core's
one guided ``sample`` loop drives it (:mod:`tta.families.common`).

:func:`load_family` is what :func:`tta.loading.load_components` calls first: a folder whose
``model_index.json`` names a family here is loaded by that family's module; any other folder goes on to the
tta / AudioLDM 1 loader.

* :mod:`tta.families.audioldm2`: diffusers ``AudioLDM2Pipeline`` folders.
* :mod:`tta.families.musicldm`: diffusers ``MusicLDMPipeline`` folders.
* :mod:`tta.families.tango`: Tango / Tango 2 as diffusers / transformers components (``TangoPipeline``).
* :mod:`tta.families.tango_hub`: Tango's own hub folders (``main_config.json`` + pickled weights), no index.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

# model_index.json's _class_name -> the module that loads it
FAMILIES = {
    "AudioLDM2Pipeline": "tta.families.audioldm2",
    "MusicLDMPipeline": "tta.families.musicldm",
    "TangoPipeline": "tta.families.tango",
}


def family_of(folder: str | Path) -> str | None:
    """The family's class name if ``folder`` is one of :data:`FAMILIES` (by ``model_index.json``), else None."""
    index = Path(folder) / "model_index.json"
    try:
        name = json.loads(index.read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None  # the tta loader reports a missing or corrupt index
    return name if name in FAMILIES else None


def load_family(folder: str | Path):
    """The :class:`~tta.loading.Components` of a family folder, or None when ``folder`` is no family's."""
    from tta.families import tango_hub

    name = family_of(folder)
    if name is None:
        return tango_hub.load_hub_folder(Path(folder)) if tango_hub.is_hub_layout(Path(folder)) else None
    return importlib.import_module(FAMILIES[name]).load_folder(Path(folder))
