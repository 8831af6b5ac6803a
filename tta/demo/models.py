"""Model folders the demo offers, and the pipeline cache: each model loads once per process, one held at a time."""

from __future__ import annotations

import threading
from pathlib import Path

from tta.errors import ModelLoadError


def is_model_folder(folder: Path) -> bool:
    """A tta or diffusers AudioLDM folder: it has a ``model_index.json``."""
    from tta.loading import INDEX_NAME

    return (folder / INDEX_NAME).is_file()


def list_models(extra: list[str | Path] = (), root: str | Path | None = None) -> list[str]:
    """Model folders for the dropdown: ``extra`` (e.g. ``--model``), then ``root`` (default: the default model
    folder, :func:`tta.paths.default_model_dir`) and its sub-folders that hold a model; resolved, no repeats."""
    from tta.paths import default_model_dir

    root = Path(root).expanduser() if root is not None else default_model_dir()
    found = [Path(p).expanduser() for p in extra]
    if root.is_dir():
        found += [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    out: list[str] = []
    for folder in found:
        name = str(folder.resolve())
        if is_model_folder(folder) and name not in out:
            out.append(name)
    return out


def sampling_defaults(folder: str | Path | None) -> tuple[int, float]:
    """(steps, guidance) a model folder asks for (its ``model_index.json``), read without loading the model;
    the pipeline's general defaults for no folder or one that has none (a broken folder errors at load time)."""
    from tta.errors import TTAError
    from tta.loading import check_sampling_defaults, read_model_index
    from tta.pipelines import DEFAULT_GUIDANCE, DEFAULT_STEPS

    own: dict = {}
    if folder:
        try:
            own = check_sampling_defaults(read_model_index(folder).get("sampling", {}), str(folder))
        except TTAError:
            own = {}
    return int(own.get("num_inference_steps", DEFAULT_STEPS)), float(own.get("guidance_scale", DEFAULT_GUIDANCE))


class ModelCache:
    """Loads a :class:`~tta.pipelines.TTAPipeline` on first use and keeps it; asking for another folder drops the
    previous one first, so memory holds one model. Thread-safe (Gradio runs handlers in threads)."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._lock = threading.Lock()
        self._path: str | None = None
        self._pipe = None
        self.loads = 0  # how many times a model was loaded (the demo's tests check it stays at one)

    def get(self, path: str | None):
        """The pipeline for model folder ``path``; :class:`ModelLoadError` with a readable message if none."""
        from tta.pipelines import TTAPipeline

        if not path:
            raise ModelLoadError(
                "no model to run: there is no trained default model yet; start the demo with "
                "`tta demo --model PATH` (a tta or diffusers AudioLDM folder) or put one in checkpoints/"
            )
        key = str(Path(path).expanduser().resolve())
        with self._lock:
            if key != self._path:
                self._pipe, self._path = None, None  # free the old model before loading the new one
                self._pipe = TTAPipeline.from_pretrained(key, device=self.device)
                self._path = key
                self.loads += 1
            return self._pipe
