"""Streaming decode against the full decode on the tiny model."""

import torch

from tta.engine.stream import chunked, decode_streaming
from tta.pipelines import codec


def test_chunked_is_exact_for_a_pointwise_map():
    x = torch.randn(2, 3, 100)
    out = chunked(lambda t: torch.repeat_interleave(t * 2, 4, dim=2), x, 2, chunk=16, overlap=4, scale=4)
    torch.testing.assert_close(out, torch.repeat_interleave(x * 2, 4, dim=2))


def test_streaming_decode_matches_full_decode(tiny_pipe):
    shape = tiny_pipe.layout(6.0).latent_shape
    latents = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = codec.decode(tiny_pipe.vae, tiny_pipe.vocoder, latents)
        mel = codec.decode_mel(tiny_pipe.vae, latents)
        spec = mel[:, 0].contiguous()
        voc_full = tiny_pipe.vocoder(spec)
    # the vocoder (convolutions only): chunk edges see zero padding instead of their neighbours
    voc_chunked = chunked(tiny_pipe.vocoder, spec, 1, chunk=128, overlap=32, scale=tiny_pipe.hop_length)
    voc_rel = float((voc_chunked - voc_full[:, : voc_chunked.shape[1]]).norm() / voc_full.norm())
    assert voc_rel < 3e-3, voc_rel
    # the whole decode: the VAE's mid-block self-attention spans the whole latent, a chunk sees only itself,
    # so the VAE part is an approximation (measured 0.07 relative L2 on this random tiny VAE at 64-frame chunks)
    streamed = decode_streaming(tiny_pipe.vae, tiny_pipe.vocoder, latents, chunk_frames=256, overlap_frames=64)
    assert streamed.shape == full.shape
    rel = float((streamed - full).norm() / full.norm())
    assert rel < 0.1, rel


def test_pipeline_streams_long_audio_only_and_says_so(tta_model_dir, tmp_path):
    import json

    import numpy as np

    from tta.cli import main
    from tta.pipelines import TTAPipeline

    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    run = dict(num_inference_steps=2, seed=1, progress=False, peak_limit=None)
    short, long = pipe("rain", 1.0, **run), pipe("rain", 6.0, **run)
    pipe.enable_streaming_decode(min_seconds=3.0, chunk_frames=128, overlap_frames=32)
    s_short, s_long = pipe("rain", 1.0, **run), pipe("rain", 6.0, **run)
    assert np.array_equal(s_short.audios, short.audios)  # under the threshold: the whole decode, bit for bit
    assert s_long.audios.shape == long.audios.shape and not np.array_equal(s_long.audios, long.audios)
    assert float(np.linalg.norm(s_long.audios - long.audios) / np.linalg.norm(long.audios)) < 0.1
    assert s_long.settings["stream_decode"] == {"min_seconds": 3.0, "chunk_frames": 128, "overlap_frames": 32}
    assert "stream_decode" not in long.settings
    pipe.enable_streaming_decode(None)
    assert np.array_equal(pipe("rain", 6.0, **run).audios, long.audios)
    # the CLI flag, recorded in the sidecar and restored by --from-sidecar
    gen = ["generate", "rain", "--model", str(tta_model_dir), "--steps", "2", "--duration", "6", "--seed", "1"]
    assert main([*gen, "--no-progress", "--stream-decode", "3", "-o", str(tmp_path / "a.wav")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["stream_decode"]["min_seconds"] == 3.0
    assert main(["generate", "--from-sidecar", str(tmp_path / "a.json"), "-o", str(tmp_path / "b.wav")]) == 0
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_a_vocoder_with_a_running_phase_vocodes_the_whole_mel(tiny_pipe):
    """tta's ISTFT vocoder carries its phase across frames: chunks vocoded apart would cancel where they are
    crossfaded, so streaming decode runs it once on the whole mel (only the VAE streams)."""
    from tta.models.istft_vocoder import ISTFTVocoder

    assert ISTFTVocoder.streams_in_chunks is False
    calls = []

    class Whole(torch.nn.Module):
        streams_in_chunks = False
        config = tiny_pipe.vocoder.config
        dtype = torch.float32

        def forward(self, spec):
            calls.append(spec.shape[1])
            return tiny_pipe.vocoder(spec)

    latents = torch.randn(1, *tiny_pipe.layout(6.0).latent_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mel = codec.decode_mel(tiny_pipe.vae, latents)
        out = decode_streaming(tiny_pipe.vae, Whole(), latents, chunk_frames=128, overlap_frames=32)
    assert calls == [mel.shape[2]] and out.shape[1] == mel.shape[2] * tiny_pipe.hop_length
