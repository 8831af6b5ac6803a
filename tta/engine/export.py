"""Exporting one component (UNet with class-label conditioning, VAE decoder, vocoder) to ONNX, with dynamic
batch and length axes, through torch's TorchScript exporter (seconds at tiny size; dynamo's took ~8x longer).

Each ``<component>.onnx`` is written beside a temporary name and renamed into place (atomic), after its manifest
``<component>.json`` (sha256 and size of the file, the format and torch versions); :func:`entry_is_valid` checks
both, so a truncated, corrupt or foreign file is exported again, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch

FORMAT_VERSION = 1
OPSET = 17


class _UNetGraph(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, labels):
        return self.unet(x, t, encoder_hidden_states=None, class_labels=labels).sample


class _VAEDecoderGraph(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.decode(z).sample


@contextlib.contextmanager
def _quiet_native_output(log: Path):
    """Hold file descriptors 1 and 2 in a temporary file for the block: the TorchScript exporter prints the whole
    IR graph from C++ when a graph fails to export (tta's ISTFT vocoder does), which the caller reports in one
    line instead. Nothing is lost: after a successful block what was captured (other threads' output) goes out
    to the terminal as it would have; after a failed one it is kept in ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    failed = False
    with tempfile.TemporaryFile() as capture:
        try:
            for fd in (1, 2):
                os.dup2(capture.fileno(), fd)
            yield
        except BaseException:
            failed = True
            raise
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            capture.seek(0)
            text = capture.read()
            if failed and text:
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_bytes(text)
            elif text:
                os.write(2, text)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest_path(path: Path) -> Path:
    return path.with_suffix(".json")


def entry_is_valid(path: Path) -> bool:
    """Whether ``path`` and its manifest exist, match (size, sha256) and come from this format and torch."""
    try:
        manifest = json.loads(_manifest_path(path).read_text())
        return (
            manifest.get("format") == FORMAT_VERSION
            and manifest.get("torch") == torch.__version__
            and path.stat().st_size == manifest["size"]
            and _file_sha256(path) == manifest["sha256"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _graph(pipe, component: str):
    """(graph module, example inputs, input names, output name, dynamic axes) of one component."""
    from tta.engine.install import COMPONENTS, torch_module

    module = torch_module(pipe, COMPONENTS[component])
    g = torch.Generator().manual_seed(0)
    shape = pipe.layout(1.0).latent_shape  # (C, H, W)
    if component == "unet":
        dim = int(module.config.projection_class_embeddings_input_dim or module.config.class_embeddings_dim or 0)
        inputs = (torch.randn(2, *shape, generator=g), torch.tensor(500, dtype=torch.int64), torch.randn(2, dim))
        axes = {"x": {0: "batch", 2: "frames"}, "labels": {0: "batch"}, "eps": {0: "batch", 2: "frames"}}
        return _UNetGraph(module), inputs, ["x", "t", "labels"], "eps", axes
    if component == "vae_decoder":
        z = torch.randn(1, int(module.config.latent_channels), *shape[1:], generator=g)
        axes = {"z": {0: "batch", 2: "frames"}, "mel": {0: "batch", 2: "mel_frames"}}
        return _VAEDecoderGraph(module), (z,), ["z"], "mel", axes
    mel = torch.randn(1, 64, int(module.config.model_in_dim), generator=g) - 4.0
    axes = {"spectrogram": {0: "batch", 1: "frames"}, "waveform": {0: "batch", 1: "samples"}}
    return module, (mel,), ["spectrogram"], "waveform", axes


def export_log(path: Path) -> Path:
    """Where a failed export of ``path`` keeps the exporter's output (and whatever else was printed meanwhile)."""
    return path.with_name(f"{path.name}.export.log")


def export_component(pipe, component: str, path: Path) -> None:
    """Export ``component`` (``"unet"``, ``"vae_decoder"``, ``"vocoder"``) of ``pipe`` to ``path`` atomically.

    Raises whatever the exporter raises for a graph it cannot handle (e.g. ``torch.istft``)."""
    graph, inputs, names, output, axes = _graph(pipe, component)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with torch.no_grad(), warnings.catch_warnings(), _quiet_native_output(export_log(path)):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph.eval(),
                inputs,
                str(tmp),
                dynamo=False,
                input_names=names,
                output_names=[output],
                dynamic_axes=axes,
                opset_version=OPSET,
            )
        manifest = {
            "format": FORMAT_VERSION,
            "torch": torch.__version__,
            "size": tmp.stat().st_size,
            "sha256": _file_sha256(tmp),
        }
        manifest_tmp = _manifest_path(tmp)
        manifest_tmp.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, path)
        os.replace(manifest_tmp, _manifest_path(path))
    finally:
        tmp.unlink(missing_ok=True)
        _manifest_path(tmp).unlink(missing_ok=True)


def weights_fingerprint(*modules: torch.nn.Module) -> str:
    """A content hash of the modules' parameters and buffers (the cache key of a model not loaded from a folder)."""
    digest = hashlib.sha256()
    for module in modules:
        for key, value in module.state_dict().items():
            digest.update(key.encode())
            digest.update(str(tuple(value.shape)).encode())
            digest.update(value.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
