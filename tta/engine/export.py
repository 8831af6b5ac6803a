"""Export the UNet (class-label conditioning), the VAE decoder and the vocoder to ONNX, with dynamic batch and
length axes, via torch's TorchScript exporter (seconds at tiny size; the dynamo exporter took 8x longer)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

OPSET = 17


class UNetGraph(torch.nn.Module):
    """``(x [B, C, H, W], t [B], labels [B, D]) -> eps``: the call :mod:`tta.sampling.guidance` makes."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, labels):
        return self.unet(x, t, encoder_hidden_states=None, class_labels=labels).sample


class VAEDecoderGraph(torch.nn.Module):
    """``z [B, C, H, W] (already divided by the scaling factor) -> log-mel [B, 1, T, n_mels]``."""

    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.decode(z).sample


def example_inputs(pipe, frames: int = 64) -> dict[str, tuple[torch.Tensor, ...]]:
    """Small inputs of each component's shapes (what the export traces and the correctness check runs)."""
    from tta.models.vae import vae_downsample_factor

    g = torch.Generator().manual_seed(0)
    c, w = pipe.latent_grid
    f = vae_downsample_factor(pipe.vae)
    h = max(frames // f, 8)
    dim = int(pipe.unet.config.projection_class_embeddings_input_dim)
    n_mels = int(pipe.vocoder.config.model_in_dim)
    return {
        "unet": (torch.randn(2, c, h, w, generator=g), torch.tensor([500.0, 500.0]), torch.randn(2, dim, generator=g)),
        "vae": (torch.randn(1, int(pipe.vae.config.latent_channels), h, w, generator=g),),
        "vocoder": (torch.randn(1, h * f, n_mels, generator=g) - 5.0,),
    }


SPECS = {  # component -> (graph wrapper, input names, output name, dynamic axes)
    "unet": (UNetGraph, ["x", "t", "labels"], "eps", {"x": {0: "b", 2: "h"}, "t": {0: "b"}, "labels": {0: "b"}}),
    "vae": (VAEDecoderGraph, ["z"], "mel", {"z": {0: "b", 2: "h"}}),
    "vocoder": (lambda m: m, ["mel"], "wave", {"mel": {0: "b", 1: "t"}}),
}


def export_component(name: str, module: torch.nn.Module, inputs: tuple, path: Path) -> None:
    """Write ``module`` (component ``name``) as ONNX to ``path``; raises when the graph cannot be exported."""
    import warnings

    wrap, input_names, output, dynamic = SPECS[name]
    dynamic = {**dynamic, output: {0: "b", 1 if name == "vocoder" else 2: "n"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrap(module).eval(),
            inputs,
            str(path),
            dynamo=False,
            input_names=input_names,
            output_names=[output],
            dynamic_axes=dynamic,
            opset_version=OPSET,
        )


def weights_hash(*modules: torch.nn.Module) -> str:
    """A content hash of the modules' parameters and buffers (the cache key of a model not loaded from a folder)."""
    digest = hashlib.sha256()
    for module in modules:
        for key, value in module.state_dict().items():
            digest.update(key.encode())
            digest.update(str(tuple(value.shape)).encode())
            digest.update(value.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
