"""The runtimes (ONNX Runtime, OpenVINO) over an exported ONNX file, and the shims that stand in for the torch
modules in the pipeline: each keeps the torch module (its ``config``, ``dtype``, weights, and the calls the engine
does not cover, e.g. the VAE's encoder) and runs its forward pass in the runtime."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

RUNTIMES = {"onnx": "onnxruntime", "openvino": "openvino"}  # engine name -> the package it needs


def runtime_installed(engine: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(RUNTIMES[engine]) is not None


class Session:
    """One compiled ONNX file: ``session(**arrays) -> the first output``, as a float32 numpy array.

    ``threads``: intra-op threads (None: torch's current count). ``options``: runtime settings (ONNX Runtime:
    ``graph_optimization_level`` ``"all"|"extended"|"basic"|"disable"``, ``inter_op_threads``,
    ``execution_mode`` ``"sequential"|"parallel"``; OpenVINO: properties such as ``PERFORMANCE_HINT``).
    """

    def __init__(self, engine: str, path: Path, threads: int | None = None, options: dict | None = None):
        self.engine = engine
        threads = threads or torch.get_num_threads()
        options = dict(options or {})
        if engine == "onnx":
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = int(options.pop("inter_op_threads", 1))
            levels = {
                "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            }
            so.graph_optimization_level = levels[options.pop("graph_optimization_level", "all")]
            if options.pop("execution_mode", "sequential") == "parallel":
                so.execution_mode = ort.ExecutionMode.ORT_PARALLEL
            so.log_severity_level = 3
            self._session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            self._run = lambda feeds: self._session.run(None, feeds)[0]
        elif engine == "openvino":
            import openvino as ov

            config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", **options}
            self._session = ov.Core().compile_model(str(path), "CPU", config)
            request = self._session.create_infer_request()
            self._run = lambda feeds: request.infer(feeds)[0].copy()
        else:
            raise ValueError(f"unknown runtime {engine!r}")

    def __call__(self, **arrays: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(arrays), dtype=np.float32)


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().contiguous().numpy()


class EngineModule(torch.nn.Module):
    """A torch module whose forward pass runs in an engine; every other attribute is the torch module's."""

    def __init__(self, module: torch.nn.Module, session: Session):
        super().__init__()
        self.torch_module = module
        self.session = session

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("torch_module"), name)


class EngineUNet(EngineModule):
    """``unet(x, t, encoder_hidden_states=None, class_labels=labels).sample`` from the engine (one scalar
    timestep per call, as the sampler gives; anything else runs in torch)."""

    def forward(self, sample, timestep, encoder_hidden_states=None, class_labels=None, **kwargs):
        t = torch.as_tensor(timestep)
        if encoder_hidden_states is not None or class_labels is None or kwargs or t.numel() != 1:
            return self.torch_module(sample, timestep, encoder_hidden_states, class_labels=class_labels, **kwargs)
        t = np.asarray(t.reshape(()).to(torch.int64).item(), dtype=np.int64)
        eps = self.session(x=_numpy(sample), t=t, labels=_numpy(class_labels))
        return SimpleNamespace(sample=torch.from_numpy(eps).to(sample.device, sample.dtype))


class EngineVAE(EngineModule):
    """``vae.decode(z).sample`` from the engine; ``encode`` and the rest stay torch's."""

    def decode(self, z, return_dict: bool = True):
        mel = torch.from_numpy(self.session(z=_numpy(z))).to(z.device, z.dtype)
        return SimpleNamespace(sample=mel) if return_dict else (mel,)


class EngineVocoder(EngineModule):
    """``vocoder(mel [B, T, n_mels]) -> waveform [B, T * hop]`` from the engine."""

    def forward(self, spectrogram):
        return torch.from_numpy(self.session(spectrogram=_numpy(spectrogram))).to(spectrogram.device)


SHIMS = {"unet": EngineUNet, "vae_decoder": EngineVAE, "vocoder": EngineVocoder}
