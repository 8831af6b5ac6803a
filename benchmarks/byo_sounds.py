"""Bring your own sounds: generation for a class the model never trained on, with and without an index holding it.

The class is "laser gun" (sci-fi laser shots): none of the corpus's 49 classes, and none of these recordings is in
the corpus. The script extracts five freely licensed laser recordings from Debian game-data packages (the same
cache ``tta data build`` uses; ``apt-get download`` where one is missing) into ``OUT/sounds`` with a caption
file each, indexes them together with the corpus's training recordings (``tta index build``, reusing
``--base-index`` when given: only the five are embedded), then generates laser prompts with

* the plain model (``--baseline``, default the shipped one), without an index and with the corpus + laser index
  (which only its retrieval prior can use: the lasers join the prior's bank),
* the retrieval-conditioned model with the corpus index only, and with the corpus + laser index (its prior
  extended too, and the lasers as its retrieved neighbours),

and reports, by the shipped CLAP, each condition's mean audio cosine to the laser recordings (their centroid),
the share of clips whose nearest recording (among the corpus's and the lasers) is a laser, and which corpus
classes the clips land nearest instead. Log-mel images of the first seed go to ``OUT/mels/``.

    .venv/bin/python benchmarks/byo_sounds.py --model runs/rr/export --base-index runs/index_corpus -o runs/byo
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

# (package, path inside it, licence): laser shots in game data, none of them in tta/data/sources.tsv
LASERS = (
    ("bzflag-data", "usr/share/games/bzflag/laser.wav", "LGPL-2.1 or MPL"),
    ("scorched3d-data", "usr/share/games/scorched3d/data/globalmods/none/data/wav/shoot/laser.wav", "GPL-2+"),
    ("scorched3d-data", "usr/share/games/scorched3d/data/globalmods/none/data/wav/shoot/laser1.wav", "GPL-2+"),
    ("scorched3d-data", "usr/share/games/scorched3d/data/globalmods/none/data/wav/misc/laserdeath.wav", "GPL-2+"),
    ("tuxmath-data", "usr/share/tuxmath/sounds/laser.wav", "GPL-3+"),
)
CAPTIONS = ("a laser gun firing", "sci-fi laser shots")
PROMPTS = ("a laser gun firing", "a sci-fi laser blaster shot", "laser beams zapping")


def extract(out: Path, debs: Path) -> Path:
    """The laser recordings under ``out/sounds`` (with ``NAME.txt`` captions and ``LICENSES.md``)."""
    from tta.data.sources import extract_members, fetch_deb

    sounds = out / "sounds"
    sounds.mkdir(parents=True, exist_ok=True)
    lines = ["# Laser recordings (bring-your-own-sounds demo); extracted by benchmarks/byo_sounds.py\n"]
    for package, path, licence in LASERS:
        name = f"{package.split('-')[0]}_{Path(path).stem}.wav"
        if not (sounds / name).is_file():
            tmp = out / "extract"
            extract_members(fetch_deb(package, debs), [path], [], tmp)
            shutil.move(str(tmp / path), sounds / name)
            shutil.rmtree(tmp, ignore_errors=True)
        (sounds / name).with_suffix(".txt").write_text("\n".join(CAPTIONS) + "\n")
        lines.append(f"* `{name}`: Debian package `{package}`, `{path}`, {licence}\n")
    (out / "LICENSES.md").write_text("".join(lines))
    return sounds


def main() -> None:
    from tta.audio.io import load_audio
    from tta.audio.melplot import save_mel_png
    from tta.evaluation.clap_zero_shot import embed_clips, load_split
    from tta.evaluation.generation import generate
    from tta.models.clap import load_clap
    from tta.paths import cache_dir
    from tta.pipelines import TTAPipeline

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the retrieval-conditioned model folder")
    parser.add_argument("--base-index", required=True, help="its index of the corpus (copied, then extended)")
    parser.add_argument("--baseline", default=None, help="plain model (default: the shipped one)")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, default=cache_dir() / "corpus")
    parser.add_argument("--seeds", type=int, default=4, help="clips per prompt (seeds 0..N-1)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--guidance", type=float, default=6.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sounds = extract(args.out, args.corpus / "debs")
    index = args.out / "index"
    if not index.exists():
        shutil.copytree(args.base_index, index)
    info = json.loads((Path(args.base_index) / "index.json").read_text())
    sources = [*info.get("sources", [str(args.corpus)]), str(sounds)]
    cmd = [sys.executable, "-m", "tta", "index", "build", *sources, "-o", str(index), "--model", args.model]
    subprocess.run([*cmd, "--split", "train+valid", "--no-progress"], check=True)

    clap = load_clap()
    lasers = embed_clips(clap, [torch.from_numpy(load_audio(p)) for p in sorted(sounds.glob("*.wav"))])
    centroid = torch.nn.functional.normalize(lasers.mean(0), dim=0)
    corpus = [it for split in ("train", "valid") for it in load_split(args.corpus, split, max_seconds=10.0)]
    corpus_emb = embed_clips(clap, [it["audio"] for it in corpus])
    bank = torch.cat([corpus_emb, lasers])
    bank_labels = [it["labels"][0] for it in corpus] + ["LASER"] * len(lasers)

    retrieval = TTAPipeline.from_pretrained(args.model)
    plain = TTAPipeline.from_pretrained(args.baseline)
    conditions = [
        ("plain model", plain, None),
        ("plain model, corpus + laser index (prior)", plain, str(index)),
        ("retrieval model, corpus index", retrieval, args.base_index),
        ("retrieval model, corpus + laser index", retrieval, str(index)),
    ]
    prompts = [p for p in PROMPTS for _ in range(args.seeds)]
    (args.out / "mels").mkdir(exist_ok=True)
    rows = {}
    for name, pipe, idx in conditions:
        audio, _ = generate(pipe, prompts, args.seconds, args.steps, args.guidance, 0, retrieval=idx)
        one = pipe(PROMPTS[0], audio_length_in_s=1.0, num_inference_steps=1, seed=0, progress=False, retrieval=idx)
        retrieved = one.retrieved
        emb = embed_clips(clap, [torch.as_tensor(a) for a in audio])
        nearest = [bank_labels[i] for i in (emb @ bank.T).argmax(dim=1).tolist()]
        rows[name] = {
            "laser_cosine": float((emb @ centroid).mean()),
            "nearest_is_laser": float(np.mean([n == "LASER" for n in nearest])),
            "nearest_classes": Counter(nearest).most_common(4),
            "retrieved_for_first_prompt": [c["id"] for c in retrieved[0][0]["clips"]] if retrieved else None,
        }
        slug = name.replace(" ", "_").replace(",", "").replace("+", "plus").replace("(", "").replace(")", "")
        save_mel_png(args.out / "mels" / f"{slug}.png", audio[0], title=f"{PROMPTS[0]!r}: {name}")
        print(f"{name}: {rows[name]}", flush=True)
    print("\n| condition | cosine to the lasers | nearest recording is a laser | nearest classes |")
    print("|---|---:|---:|---|")
    for name, row in rows.items():
        classes = ", ".join(f"{c} {n}" for c, n in row["nearest_classes"])
        print(f"| {name} | {row['laser_cosine']:.3f} | {row['nearest_is_laser']:.0%} | {classes} |")
    real = float((lasers @ centroid).mean())
    print(f"(the laser recordings themselves: cosine {real:.3f} to their centroid; {len(prompts)} clips a row)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
