"""Streaming decode for long audio: the VAE decoder and the vocoder run on overlapping time chunks whose outputs
are crossfaded, so peak memory follows the chunk length, not the duration.

Each chunk ``[s, e)`` of the input is extended by ``overlap`` frames of context on both sides; its output is
weighted by a trapezoid that is 1 on the chunk and ramps linearly over ``[e - overlap, e + overlap)`` (and the
mirror at its start), so neighbouring weights sum to 1 and the seams sit where both chunks had context. The result
is close to, not bit-identical with, a full decode: the convolutions near a chunk's edge see zero padding instead
of the neighbouring frames (the VAE's mid-block attention also sees only its chunk), and the crossfade averages
two slightly different estimates.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from tta.pipelines import codec


def chunked(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, dim: int, chunk: int, overlap: int, scale: int
):
    """``fn`` over overlapping chunks of ``x`` along ``dim`` (``fn`` maps n frames to n * ``scale`` along the
    same ``dim`` of its output), crossfaded. One chunk covering ``x`` is ``fn(x)`` itself."""
    total = x.shape[dim]
    if total <= chunk + overlap:
        return fn(x)
    out = weight = None
    for start in range(0, total, chunk):
        a, b = max(0, start - overlap), min(total, start + chunk + overlap)
        y = fn(x.narrow(dim, a, b - a)).narrow(dim, 0, (b - a) * scale)
        frames = torch.arange(a * scale, b * scale, dtype=torch.float32) / scale  # input-frame position of samples
        w = torch.ones_like(frames)
        if start > 0:
            w = torch.minimum(w, ((frames - (start - overlap)) / (2 * overlap)).clamp(0, 1))
        if start + chunk < total:
            w = torch.minimum(w, (((start + chunk + overlap) - frames) / (2 * overlap)).clamp(0, 1))
        shape = [1] * y.ndim
        shape[dim] = -1
        w = w.view(shape).to(y.dtype)
        if out is None:
            size = list(y.shape)
            size[dim] = total * scale
            out, weight = y.new_zeros(size), y.new_zeros(shape[:dim] + [total * scale] + shape[dim + 1 :])
        out.narrow(dim, a * scale, (b - a) * scale).add_(y * w)
        weight.narrow(dim, a * scale, (b - a) * scale).add_(w)
    return out / weight.clamp_min(1e-8)


@torch.no_grad()
def decode_streaming(
    vae: torch.nn.Module,
    vocoder: torch.nn.Module,
    latents: torch.Tensor,
    num_frames: int | None = None,
    chunk_frames: int = 256,
    overlap_frames: int = 32,
) -> torch.Tensor:
    """:func:`tta.pipelines.codec.decode` (latents [B, C, H, W] -> waveforms [B, T * hop]) in chunks of
    ``chunk_frames`` mel frames with ``overlap_frames`` of context each side (rounded to whole latent frames).

    The vocoder runs in chunks too unless its class says ``streams_in_chunks = False`` (a vocoder whose phase
    runs across frames, as tta's ISTFT vocoder: it then vocodes the whole, far smaller, mel)."""
    from tta.models.vae import vae_downsample_factor

    factor = vae_downsample_factor(vae)
    mel = chunked(
        lambda z: codec.decode_mel(vae, z),
        latents,
        2,
        max(1, chunk_frames // factor),
        max(1, overlap_frames // factor),
        factor,
    )
    keep = mel.shape[2] if num_frames is None else min(int(num_frames), mel.shape[2])
    hop = codec.hop_length(vocoder)
    spec = mel[:, 0, :keep].to(vocoder.dtype).contiguous()  # [B, T, n_mels]
    if not getattr(vocoder, "streams_in_chunks", True):
        return vocoder(spec).float()[:, : keep * hop]
    return chunked(lambda m: vocoder(m).float(), spec, 1, chunk_frames, overlap_frames, hop)[:, : keep * hop]
