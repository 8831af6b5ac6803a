"""CPU inference engines for the same weights: the UNet, VAE decoder and vocoder exported once per model hash.

``engine="torch"`` (the default) runs the modules as they are. ``"onnx"`` (ONNX Runtime) and ``"openvino"`` run
an ONNX export of each module, built on first use and cached under
``tta.paths.cache_dir()/engines/<model_hash>/<engine>/`` (:mod:`tta.engine.cache`: atomic, checksummed, rebuilt
when corrupt or stale). ``"auto"`` picks the first of :data:`AUTO_ORDER` whose runtime is installed and whose
export matches torch (:data:`CHECK_TOLERANCE`), else torch. A component that cannot be exported (the ISTFT
vocoder: ``torch.istft`` has no ONNX form) stays on torch; :func:`engine_settings` records what ran.

Use ``TTAPipeline.from_pretrained(path, engine="onnx")``, ``pipe.set_engine("onnx")`` or ``--engine onnx``.
Install the runtimes with ``pip install tta[engine]``.
"""

from __future__ import annotations

import importlib.util

from tta.errors import ModelLoadError

ENGINES = ("torch", "onnx", "openvino", "auto")
RUNTIME_PACKAGE = {"onnx": "onnxruntime", "openvino": "openvino"}
AUTO_ORDER = ("onnx", "openvino")  # fastest first, as measured in benchmarks/README.md (engine table)
CHECK_TOLERANCE = 1e-3  # relative L2 difference to torch an export must stay under to be used


def available(engine: str) -> bool:
    """Whether ``engine``'s runtime (and the ONNX exporter it needs) is installed."""
    if engine == "torch":
        return True
    return all(importlib.util.find_spec(m) is not None for m in (RUNTIME_PACKAGE[engine], "onnx"))


def require(engine: str) -> None:
    """Raise one clear line when ``engine`` is unknown or its runtime is not installed."""
    if engine not in ENGINES:
        raise ModelLoadError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)} (--engine)")
    if engine in RUNTIME_PACKAGE and not available(engine):
        raise ModelLoadError(
            f"engine {engine!r} needs {RUNTIME_PACKAGE[engine]} and onnx, which are not installed: "
            "pip install 'tta[engine]' (or use --engine torch)"
        )


def apply_engine(pipe, engine: str) -> dict[str, str]:
    """Put ``pipe``'s UNet, VAE decoder and vocoder on ``engine``; returns {component: engine that runs it}."""
    from tta.engine.modules import attach, detach

    require(engine)
    detach(pipe)
    if engine == "torch":
        return {"unet": "torch", "vae": "torch", "vocoder": "torch"}
    candidates = [e for e in AUTO_ORDER if available(e)] if engine == "auto" else [engine]
    for name in candidates:
        used = attach(pipe, name, strict=engine != "auto")
        if used is not None:
            return used
    return {"unet": "torch", "vae": "torch", "vocoder": "torch"}


def engine_settings(pipe) -> dict[str, str]:
    """The engine part of an output's settings: the requested engine and what ran each component."""
    state = getattr(pipe, "_engine_state", None)
    if state is None:
        return {"engine": "torch"}
    return {"engine": state["requested"], "engine_components": dict(state["used"])}
