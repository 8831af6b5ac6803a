"""Fine-tuning on a class the corpus lacks: KDE's Oxygen desktop notification sounds (Debian ``oxygen-sounds``,
LGPL-3.0+; 50 short UI chimes and alerts; no corpus class is a UI notification and the corpus does not use this
package, see ``tta/data/sources.tsv``).

    python benchmarks/finetune_new_class.py --work /tmp/ft --clips 20 --rank 16 --steps 20

1. ``build``: ``apt-get download oxygen-sounds``, extract its ``.ogg`` files, decode them to 16 kHz WAVs with a
   ``NAME.txt`` caption, and split them by file name (sorted by sha1): the first ``--clips`` fine-tune, the last
   20 are held out. No audio is committed; this rebuilds the set.
2. ``tta finetune`` (the same trainer) on the fine-tuning clips.
3. Generates ``--gens`` clips of the prompt with the base model and with the adapter, each with the shipped
   retrieval prior, none, or the prior extended with the fine-tuning clips (the retrieval index ``tta finetune``
   writes beside the adapter, passed per call as ``tta generate --retrieval`` does), and
   reports: CLAP cosine of each generation to the held-out clips' centroid, FAD
   (CLAP audio embeddings, against the held-out clips; few clips: only the ranking is meaningful) and the share of
   generations whose nearest neighbour among the corpus bank (the prior's 1575 corpus audio embeddings) plus the
   new clips is a new-class clip. Prints one JSON line per variant and the timing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "oxygen-sounds"
CAPTION = "a desktop notification chime"
HELD_OUT = 20


def build(work: Path) -> tuple[list[Path], list[Path]]:
    """The clip set, sorted by sha1 of the file name: (fine-tuning candidates, held-out)."""
    from tta.audio.io import load_audio, save_audio

    clips = work / "clips"
    if not clips.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["apt-get", "download", PACKAGE], cwd=tmp, check=True, capture_output=True)
            deb = next(Path(tmp).glob("*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
            clips.mkdir(parents=True)
            for ogg in sorted((Path(tmp) / "x").rglob("*.ogg")):
                save_audio(clips / f"{ogg.stem}.wav", load_audio(ogg, 16000), 16000)
                (clips / f"{ogg.stem}.txt").write_text(CAPTION + "\n")
    files = sorted(clips.glob("*.wav"), key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())
    return files[:-HELD_OUT], files[-HELD_OUT:]


@torch.no_grad()
def embed(clap, files_or_audio) -> torch.Tensor:
    from tta.audio.io import load_audio

    rows = []
    for item in files_or_audio:
        wav = torch.from_numpy(load_audio(item, 16000)) if isinstance(item, Path) else torch.as_tensor(item)
        rows.append(clap.encode_audio(wav.float()[None]).float()[0])
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def scores(gen: torch.Tensor, held: torch.Tensor, bank: torch.Tensor, new: torch.Tensor) -> dict:
    from tta.evaluation.frechet import frechet_distance

    centroid = torch.nn.functional.normalize(held.mean(0), dim=0)
    pool = torch.cat([bank, new])
    nearest = (gen @ pool.T).argmax(1)
    return {
        "clap_cos_to_heldout_centroid": round(float((gen @ centroid).mean()), 4),
        "fad_clap_vs_heldout": round(float(frechet_distance(gen.numpy(), held.numpy())), 4),
        "nn_new_class_share": round(float((nearest >= len(bank)).float().mean()), 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/tta-finetune-new-class"))
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--gens", type=int, default=4)
    p.add_argument("--sampler-steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mel-png", type=Path, help="also write a held-out clip's mel beside generations (PNG)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from safetensors.torch import load_file

    from tta.pipelines import TTAPipeline

    pool, held_files = build(args.work)
    train_dir = args.work / f"train_{args.clips}"
    train_dir.mkdir(exist_ok=True)
    for f in pool[: args.clips]:
        for src in (f, f.with_suffix(".txt")):
            if not (train_dir / src.name).exists():
                (train_dir / src.name).symlink_to(src)
    adapter = args.work / f"oxygen_{args.clips}_r{args.rank}.safetensors"
    t0 = time.time()
    cmd = [sys.executable, "-m", "tta", "finetune", str(train_dir), "-o", str(adapter), "--rank", str(args.rank)]
    cmd += ["--steps", str(args.steps), "--threads", str(args.threads), "--preview-every", "0", "--no-progress"]
    index = args.work / f"oxygen_{args.clips}_r{args.rank}.index"
    cmd += ["--index-out", str(index)]
    subprocess.run(cmd, check=True)
    train_s = time.time() - t0
    pipe = TTAPipeline.from_pretrained(REPO / "checkpoints")
    held = embed(pipe.clap, held_files)
    new = embed(pipe.clap, pool[: args.clips] + held_files)
    bank = torch.nn.functional.normalize(load_file(str(REPO / "checkpoints/prior/model.safetensors"))["embeddings"])
    kw = dict(audio_length_in_s=2.56, num_inference_steps=args.sampler_steps, seed=0, progress=False)
    rows = {"real held-out (ceiling)": scores(held, held, bank, new)}
    panels = {}
    t1 = time.time()
    variants = [("base", None, True, None), ("base, no prior", None, False, None),
                ("extended prior only", None, True, index), ("LoRA (shipped prior)", 1.0, True, None),
                ("LoRA, no prior", 1.0, False, None), ("LoRA + extended prior", 1.0, True, index)]  # fmt: skip
    for name, scale, use_prior, retrieval in variants:
        pipe.unload_lora()
        if scale is not None:
            pipe.load_lora(adapter, scale)
        out = pipe([CAPTION] * args.gens, use_prior=use_prior, retrieval=retrieval, **kw)
        rows[name] = scores(embed(pipe.clap, out.audios), held, bank, new)
        panels[name] = out.audios[0]
    gen_s = time.time() - t1
    if args.mel_png:
        from tta.audio.io import load_audio
        from tta.audio.melplot import save_mel_panels

        shown = ["base", "extended prior only", "LoRA + extended prior"]
        real = ("held-out real clip", load_audio(held_files[0], 16000)[: int(2.56 * 16000)])
        save_mel_panels(args.mel_png, [real, *((f"{n} (seed 0)", panels[n]) for n in shown)])
    for name, row in rows.items():
        print(json.dumps({"variant": name, **row}))
    print(json.dumps({"clips": args.clips, "rank": args.rank, "steps": args.steps, "gens": args.gens,
                      "train_s": round(train_s, 1), "generate_s": round(gen_s, 1),
                      "adapter_bytes": adapter.stat().st_size, "threads": args.threads}))  # fmt: skip


if __name__ == "__main__":
    main()
