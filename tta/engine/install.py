"""Putting an engine into a pipeline: ``install(pipe, "onnx"|"openvino"|"auto"|"torch")``.

Every component (UNet, VAE decoder, vocoder) is exported once per model hash and checked against torch on a
seeded probe input before it is used (relative difference <= :data:`TOLERANCE`); an entry that fails the check
(stale weights, a corrupt file the manifest missed) is exported again once, and if it still fails the component
stays in torch (``auto``) or loading fails (an explicit engine). A component the exporter cannot handle (e.g. the
``torch.istft`` head of tta's ISTFT vocoder) stays in torch and the settings say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tta.engine.export import FORMAT_VERSION, entry_is_valid, export_component, weights_fingerprint
from tta.engine.runtime import RUNTIMES, SHIMS, Session, runtime_installed
from tta.engine.winograd import winograd_layers
from tta.errors import InputError, ModelLoadError

ENGINES = ("torch", "onnx", "openvino", "auto")
# auto's order, by benchmarks/README.md (bench_engine_settings.py, bench_pipeline.py on a quiet machine): the two
# UNets tie (1.15-1.17x torch at 2 threads), ONNX Runtime is ahead end to end (1.22x vs 1.19x diffusers at 1 thread)
# and exports faster (21 s vs 27-34 s), so it goes first.
AUTO_ORDER = ("onnx", "openvino")
COMPONENTS = {"unet": "unet", "vae_decoder": "vae", "vocoder": "vocoder"}  # component -> pipeline attribute
TOLERANCE = 1e-3
INSTALL_HINT = "pip install 'tta[engine]'"


def available_runtimes() -> list[str]:
    """The installed engine runtimes, in ``auto``'s order."""
    return [e for e in AUTO_ORDER if runtime_installed(e)]


def check_engine(engine: Any) -> str:
    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine in RUNTIMES and not runtime_installed(engine):
        raise InputError(
            f"--engine {engine} needs the {RUNTIMES[engine]} package, which is not installed: {INSTALL_HINT}"
        )
    return engine


def torch_module(pipe, attr: str) -> torch.nn.Module:
    """The torch module behind ``pipe.<attr>`` (itself, or the one an engine shim wraps)."""
    module = getattr(pipe, attr)
    return getattr(module, "torch_module", module) if hasattr(module, "session") else module


def uninstall(pipe) -> None:
    """Put the torch modules back."""
    for attr in COMPONENTS.values():
        setattr(pipe, attr, torch_module(pipe, attr))
    pipe.engine_settings = {"engine": "torch"}


def engine_dir(pipe) -> Path:
    """``cache_dir()/engines/<key>/float32-v<format>``: the key is the model hash (a weights fingerprint without a
    model folder), plus a digest of what is merged into its UNet (a distilled student, LoRA adapters and their
    scales), so a teacher, its student and each adapter setting keep their own entries."""
    import hashlib

    from tta.lora.apply import loaded_adapters
    from tta.paths import cache_dir

    key = pipe.model_hash or weights_fingerprint(*(torch_module(pipe, a) for a in COMPONENTS.values()))
    extra = []
    if getattr(pipe, "student_path", None):
        from tta.loading import model_hash

        extra.append(f"student:{model_hash(pipe.student_path)}")
    extra += [f"lora:{e['hash']}:{e['scale']:g}" for e in loaded_adapters(pipe) if e["scale"] != 0]
    if extra:
        key += "-" + hashlib.sha256("|".join(extra).encode()).hexdigest()[:12]
    return cache_dir() / "engines" / key / f"float32-v{FORMAT_VERSION}"


def install(pipe, engine: str = "torch", threads: int | None = None, options: dict | None = None) -> dict:
    """Run ``pipe``'s UNet, VAE decoder and vocoder in ``engine``; returns (and sets) ``pipe.engine_settings``.

    Raises:
        InputError: an unknown engine, or an explicit one whose runtime is missing or that cannot serve this
            pipeline (not CPU float32).
        ModelLoadError: an explicit engine's export does not match torch.
    """
    check_engine(engine)
    uninstall(pipe)
    if engine == "torch":
        return pipe.engine_settings
    if pipe.device.type != "cpu" or pipe.dtype != torch.float32:
        if engine == "auto":
            return pipe.engine_settings
        raise InputError(f"--engine {engine} runs float32 on CPU only (this pipeline: {pipe.dtype} on {pipe.device})")
    candidates = available_runtimes() if engine == "auto" else [engine]
    for name in candidates:
        shims, report = {}, {}
        for component, attr in COMPONENTS.items():
            shim, report[component] = _load_component(pipe, name, component, threads, options)
            if shim is not None:
                shims[attr] = shim
            elif engine != "auto" and not report[component].startswith(("torch (not exportable", "torch (winograd")):
                raise ModelLoadError(f"engine {name}: {component} {report[component]}")
        if shims:
            for attr, shim in shims.items():
                setattr(pipe, attr, shim)
            pipe.engine_settings = {"engine": name, "components": report}
            return pipe.engine_settings
    return pipe.engine_settings


def _load_component(pipe, engine: str, component: str, threads, options) -> tuple[torch.nn.Module | None, str]:
    """The checked shim for one component, exporting (again) where the cache entry is missing, stale or wrong."""
    path = engine_dir(pipe) / f"{component}.onnx"
    unsupported = path.with_suffix(".unsupported")
    if unsupported.is_file() and unsupported.read_text().strip() == torch.__version__:
        return None, "torch (not exportable with this torch)"
    module = torch_module(pipe, COMPONENTS[component])
    if component == "vae_decoder" and winograd_layers(module):  # faster in torch (pipe.enable_winograd_decode)
        return None, "torch (winograd decode)"
    diff = float("nan")
    for _ in range(2):
        if not entry_is_valid(path):
            try:
                export_component(pipe, component, path)
            except Exception as err:  # noqa: BLE001 - any exporter failure leaves the component in torch
                unsupported.parent.mkdir(parents=True, exist_ok=True)
                unsupported.write_text(torch.__version__)
                return None, f"torch (not exportable: {type(err).__name__}: {str(err).splitlines()[0][:200]})"
        try:
            shim = SHIMS[component](module, Session(engine, path, threads, options))
        except Exception:  # noqa: BLE001 - an unreadable file is a corrupt entry: export again
            path.unlink(missing_ok=True)
            continue
        diff = probe_difference(pipe, component, module, shim)
        if diff <= TOLERANCE:
            return shim, f"{engine} (probe rel diff {diff:.1e})"
        path.unlink(missing_ok=True)  # stale or wrong: export again once
    return None, f"torch (engine output differs from torch: rel diff {diff:.1e})"


@torch.no_grad()
def probe_difference(pipe, component: str, module: torch.nn.Module, shim: torch.nn.Module) -> float:
    """max |engine - torch| / max |torch| on a seeded probe input (1 s of audio)."""
    g = torch.Generator().manual_seed(0)
    shape = pipe.layout(1.0).latent_shape
    if component == "unet":
        dim = int(module.config.projection_class_embeddings_input_dim or module.config.class_embeddings_dim or 0)
        x, labels, t = torch.randn(2, *shape, generator=g), torch.randn(2, dim, generator=g), torch.tensor(500)
        ref = module(x, t, encoder_hidden_states=None, class_labels=labels).sample
        out = shim(x, t, encoder_hidden_states=None, class_labels=labels).sample
    elif component == "vae_decoder":
        z = torch.randn(1, int(module.config.latent_channels), *shape[1:], generator=g)
        ref, out = module.decode(z).sample, shim.decode(z).sample
    else:
        mel = torch.randn(1, 64, int(module.config.model_in_dim), generator=g) - 4.0
        ref, out = module(mel), shim(mel)
    scale = ref.abs().max().clamp_min(1e-12)
    return float((out.float() - ref.float()).abs().max() / scale)
