"""Peak RSS of decoding (VAE decoder + vocoder) 10 s and 60 s of audio with the shipped model, full decode vs
tta.engine.stream's chunked decode, each case in a fresh subprocess (ru_maxrss after the decode, minus the RSS
after loading).

    PYTHONPATH=$PWD python benchmarks/bench_memory.py [--model checkpoints] [--durations 10,60]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(2)
from tta.pipelines import TTAPipeline
from tta.engine.stream import decode_streaming
pipe = TTAPipeline.from_pretrained(sys.argv[1])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
layout = pipe.layout(float(sys.argv[2]))
z = torch.randn(1, *layout.latent_shape, generator=torch.Generator().manual_seed(0))
start = time.perf_counter()
with torch.no_grad():
    if sys.argv[3] == "stream":
        wav = decode_streaming(pipe.vae, pipe.vocoder, z)
    else:
        wav = pipe.decode(z)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import numpy as np
np.save(sys.argv[4], wav.float().numpy())
print(json.dumps({"load_mib": base / 1024, "peak_mib": peak / 1024, "decode_s": time.perf_counter() - start}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="checkpoints")
    parser.add_argument("--durations", default="10,60")
    args = parser.parse_args()
    import tempfile
    from pathlib import Path

    import numpy as np

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
        print(f"{duration:>4} s: streamed vs full waveform, relative L2 difference {diff:.2e}")


if __name__ == "__main__":
    main()
