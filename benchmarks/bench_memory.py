"""Peak RSS of decoding (VAE decoder + vocoder) 10 s and 60 s of audio with the shipped model, full decode vs
tta.engine.stream's chunked decode, each case in a fresh subprocess (ru_maxrss after the decode, minus the RSS
after loading).

    PYTHONPATH=$PWD python benchmarks/bench_memory.py [--model checkpoints|audioldm-s] [--durations 10,60]

``--model audioldm-s``: random AudioLDM-S-size VAE and HiFi-GAN vocoder instead of a model folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(2)
from tta.pipelines import codec
from tta.engine.stream import decode_streaming
if sys.argv[1] == "audioldm-s":  # random AudioLDM-S-size VAE and HiFi-GAN (tta.models builders)
    from tta.models.vae import build_vae
    from tta.models.vocoder import build_vocoder
    torch.manual_seed(0)
    vae, vocoder = build_vae().eval(), build_vocoder().eval()
else:
    from tta.pipelines import TTAPipeline
    pipe = TTAPipeline.from_pretrained(sys.argv[1])
    vae, vocoder = pipe.vae, pipe.vocoder
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
frames = -(-round(float(sys.argv[2]) * 100) // 32) * 32  # 16 kHz, hop 160, padded to the VAE x UNet factor
z = torch.randn(1, vae.config.latent_channels, frames // 4, 16, generator=torch.Generator().manual_seed(0))
start = time.perf_counter()
with torch.no_grad():
    if sys.argv[3] == "stream":
        wav = decode_streaming(vae, vocoder, z)
    else:
        wav = codec.decode(vae, vocoder, z)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import numpy as np
np.save(sys.argv[4], wav.float().numpy())
print(json.dumps({"load_mib": base / 1024, "peak_mib": peak / 1024, "decode_s": time.perf_counter() - start}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="checkpoints", help="a model folder, or audioldm-s (random weights)")
    parser.add_argument("--durations", default="10,60")
    args = parser.parse_args()
    import tempfile
    from pathlib import Path

    import numpy as np

    from tta.audio.melplot import log_mel

    tmp = Path(tempfile.mkdtemp(prefix="tta-bench-memory-"))
    for duration in args.durations.split(","):
        for mode in ("full", "stream"):
            wav = tmp / f"{duration}-{mode}.npy"
            done = subprocess.run(
                [sys.executable, "-c", CHILD, args.model, duration, mode, str(wav)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{duration:>4} s {mode:>6}: peak RSS {r['peak_mib']:7.0f} MiB (after load {r['load_mib']:6.0f}, "
                f"decode +{r['peak_mib'] - r['load_mib']:6.0f} MiB), {r['decode_s']:.1f} s"
            )
        full, stream = np.load(tmp / f"{duration}-full.npy"), np.load(tmp / f"{duration}-stream.npy")
        diff = float(np.linalg.norm(stream - full) / max(np.linalg.norm(full), 1e-12))
        mel_full, mel_stream = (np.exp(log_mel(w[0], 16000)) for w in (full, stream))
        mel_diff = float(np.linalg.norm(mel_stream - mel_full) / np.linalg.norm(mel_full))
        ratio = mel_stream.sum(0) / np.maximum(mel_full.sum(0), 1e-9)  # per-frame energy, streamed / full
        print(
            f"{duration:>4} s: streamed vs full, relative L2 difference of the waveform {diff:.2e}, of the mel "
            f"{mel_diff:.2e}; per-frame energy ratio min {ratio.min():.2f}, max {ratio.max():.2f}"
        )


if __name__ == "__main__":
    main()
