"""Engine-backed stand-ins for the UNet, VAE and vocoder: torch modules that keep the original (its config,
parameters and dtype, its encoder) and run only the exported forward pass on the runtime."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import torch

from tta.engine import CHECK_TOLERANCE, cache, export, runtimes
from tta.errors import ModelLoadError

COMPONENTS = ("unet", "vae", "vocoder")


class EngineModule(torch.nn.Module):
    """Wraps ``inner`` (kept as a submodule, so ``.parameters()``, ``.config`` and ``.dtype`` still work)."""

    def __init__(self, inner: torch.nn.Module, graph):
        super().__init__()
        self.inner = inner
        self.graph = graph

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def _run(self, *tensors: torch.Tensor) -> torch.Tensor:
        arrays = [np.ascontiguousarray(t.detach().cpu().float().numpy()) for t in tensors]
        return torch.from_numpy(self.graph.run(*arrays))


class EngineUNet(EngineModule):
    def forward(self, x, t, encoder_hidden_states=None, class_labels=None, **kwargs):
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1).expand(x.shape[0])
        return SimpleNamespace(sample=self._run(x, t, class_labels).to(x.dtype))


class EngineVAE(EngineModule):
    def decode(self, z, **kwargs):
        return SimpleNamespace(sample=self._run(z).to(z.dtype))


class EngineVocoder(EngineModule):
    def forward(self, mel):
        return self._run(mel)


WRAPPERS = {"unet": EngineUNet, "vae": EngineVAE, "vocoder": EngineVocoder}


def model_key(pipe) -> str:
    return pipe.model_hash or "weights-" + export.weights_hash(pipe.unet, pipe.vae, pipe.vocoder)


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def build(pipe, engine: str, folder) -> dict:
    """Export each component, check it against torch on the runtime, and describe the result."""
    inputs = export.example_inputs(pipe)
    status, start = {}, time.perf_counter()
    for name in COMPONENTS:
        path = folder / f"{name}.onnx"
        module = getattr(pipe, name)
        if name == "unet" and pipe.is_retrieval_model:
            status[name] = {"ok": False, "reason": "retrieval UNet (cross-attention to the index) is not exported"}
            continue
        try:
            export.export_component(name, module, inputs[name], path)
            got = runtimes.open_graph(engine, path).run(*[t.numpy() for t in inputs[name]])
        except Exception as err:  # noqa: BLE001 - an unexportable component stays on torch, recorded
            path.unlink(missing_ok=True)
            status[name] = {"ok": False, "reason": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
            continue
        with torch.no_grad():
            ref = export.SPECS[name][0](module)(*inputs[name]).float().numpy()
        diff = rel_diff(got, ref)
        status[name] = {"ok": diff <= CHECK_TOLERANCE, "diff": diff}
        if not status[name]["ok"]:
            path.unlink()
            status[name]["reason"] = f"differs from torch by {diff:.1e} > {CHECK_TOLERANCE:g}"
    return {"components": status, "export_seconds": time.perf_counter() - start}


def ensure_entry(pipe, engine: str) -> tuple[dict, object]:
    """The current, intact cache entry for ``pipe`` on ``engine``, built (or rebuilt) if needed."""
    folder = cache.entry_dir(model_key(pipe), engine)
    manifest = cache.load_manifest(folder, engine)
    if manifest is None:
        manifest = cache.write_entry(folder, engine, lambda tmp: build(pipe, engine, tmp))
    return manifest, folder


def attach(pipe, engine: str, strict: bool) -> dict[str, str] | None:
    """Swap the exportable components for engine-backed ones; None (``strict=False``) if none could be."""
    if pipe.device.type != "cpu" or pipe.dtype != torch.float32:
        if strict:
            raise ModelLoadError(f"engine {engine!r} runs float32 on the CPU (got {pipe.dtype} on {pipe.device})")
        return None
    manifest, folder = ensure_entry(pipe, engine)
    used = {}
    for name in COMPONENTS:
        ok = manifest["components"][name]["ok"]
        if ok:
            setattr(pipe, name, WRAPPERS[name](getattr(pipe, name), runtimes.open_graph(engine, folder / f"{name}.onnx")))
        used[name] = engine if ok else "torch"
    if not strict and set(used.values()) == {"torch"}:
        return None
    pipe._engine_state = {"requested": engine, "used": used, "folder": str(folder)}
    return used


def detach(pipe) -> None:
    """Put the torch modules back (the engine's graphs are dropped)."""
    for name in COMPONENTS:
        module = getattr(pipe, name)
        if isinstance(module, EngineModule):
            setattr(pipe, name, module.inner)
    pipe._engine_state = None
