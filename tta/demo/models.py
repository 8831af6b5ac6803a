"""Model folders the demo offers, and the pipeline cache: each model loads once per process, one held at a time."""

from __future__ import annotations

import contextlib
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


def list_adapters(folder: str | Path | None) -> list[str]:
    """The tta LoRA adapters (``tta finetune`` files) in ``folder``, resolved and sorted; other files are skipped."""
    from safetensors import safe_open

    from tta.lora.adapter import FORMAT

    if not folder or not Path(folder).expanduser().is_dir():
        return []
    found = []
    for path in sorted(Path(folder).expanduser().glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("format") == FORMAT:
                    found.append(str(path.resolve()))
        except Exception:  # noqa: BLE001 - not a safetensors file: not offered
            continue
    return found


class ModelCache:
    """Loads a :class:`~tta.pipelines.TTAPipeline` on first use and keeps it; asking for another folder drops the
    previous one first, so memory holds one model. Thread-safe (Gradio runs handlers in threads).

    :meth:`use` also sets the pipeline's LoRA adapter for the request. Requests that want the same model, adapter
    and scale run side by side; one that wants another waits until those running finish, then switches (adapters
    change the one shared UNet, so two settings never run at once).
    """

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._cond = threading.Condition()
        self._path: str | None = None
        self._pipe = None
        self._lora: tuple[str, float] | None = None
        self._active = 0  # requests running on the current (model, adapter) state
        self.loads = 0  # how many times a model was loaded (the demo's tests check it stays at one)

    def get(self, path: str | None):
        """The pipeline for model folder ``path`` (with whatever adapter it has now); :class:`ModelLoadError` with
        a readable message if none."""
        with self._cond:
            while self._active and self._key(path) != self._path:
                self._cond.wait()
            return self._switch(self._key(path), self._lora)

    @contextlib.contextmanager
    def use(self, path: str | None, lora: str | None = None, scale: float = 1.0):
        """``with cache.use(folder, adapter, scale) as pipe``: the pipeline with only that adapter loaded (none for
        ``lora=None`` or scale 0), held in that state until the block ends."""
        key, want = self._key(path), (str(Path(lora).expanduser().resolve()), float(scale)) if lora else None
        if want is not None and want[1] == 0:
            want = None
        with self._cond:
            while self._active and (key, want) != (self._path, self._lora):
                self._cond.wait()
            pipe = self._switch(key, want)
            self._active += 1
        try:
            yield pipe
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    @staticmethod
    def _key(path: str | None) -> str:
        if not path:
            raise ModelLoadError(
                "no model to run: there is no trained default model yet; start the demo with "
                "`tta demo --model PATH` (a tta or diffusers AudioLDM folder) or put one in checkpoints/"
            )
        return str(Path(path).expanduser().resolve())

    def _switch(self, key: str, lora: tuple[str, float] | None):
        """Load model ``key`` if it is not the current one, then set its adapter (caller holds the lock, and no
        request is running)."""
        from tta.pipelines import TTAPipeline

        if key != self._path:
            self._pipe, self._path, self._lora = None, None, None  # free the old model before loading the new one
            self._pipe = TTAPipeline.from_pretrained(key, device=self.device)
            self._path = key
            self.loads += 1
        if lora != self._lora:
            self._pipe.unload_lora()
            self._lora = None
            if lora is not None:
                self._pipe.load_lora(*lora)
            self._lora = lora
        return self._pipe
