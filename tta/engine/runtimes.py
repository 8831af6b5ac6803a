"""The CPU runtimes an exported graph runs on: ONNX Runtime and OpenVINO, behind one ``run(*arrays)`` call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class OnnxRuntimeGraph:
    """An ONNX Runtime session (all graph optimisations; intra-op threads follow torch's thread count)."""

    def __init__(self, path: Path, threads: int | None = None, level: str = "ORT_ENABLE_ALL"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def run(self, *arrays: np.ndarray) -> np.ndarray:
        return self.session.run(None, dict(zip(self.names, arrays)))[0]


class OpenVinoGraph:
    """An OpenVINO model compiled for the CPU (latency hint; threads follow torch's thread count)."""

    def __init__(self, path: Path, threads: int | None = None, hint: str = "LATENCY"):
        import openvino as ov

        core = ov.Core()
        config = {"PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": threads or torch.get_num_threads()}
        config["INFERENCE_PRECISION_HINT"] = "f32"  # same maths as torch (no bf16 on AMX/AVX512 CPUs)
        self.model = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.names = [i.get_any_name() for i in self.model.inputs]

    def run(self, *arrays: np.ndarray) -> np.ndarray:
        request = self.model.create_infer_request()
        return request.infer(dict(zip(self.names, arrays)))[self.model.outputs[0]]


def open_graph(engine: str, path: Path, **options):
    """Open the graph at ``path`` on ``engine`` (``"onnx"`` or ``"openvino"``)."""
    return {"onnx": OnnxRuntimeGraph, "openvino": OpenVinoGraph}[engine](path, **options)
