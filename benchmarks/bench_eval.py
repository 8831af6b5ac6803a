"""``tta eval`` on the real corpus: the numbers a reader needs to judge a model's scores.

Builds (under ``--work``) folders of links to the corpus' test split and a sample of its train split, plus
all-silent and white-noise "generations" named like the test clips, then prints, with the shipped CLAP as
the backend:

* the FAD floor: test split vs train sample (and test vs itself);
* every metric for silence and for white noise (peak 0.5) as generations against the real test split;
* the CLAP score of each test clip with its own first caption vs a caption of another class;
* the embedding cache: the same evaluation cold (empty cache) and again (warm).

    .venv/bin/python benchmarks/bench_eval.py --corpus ~/.cache/tta/corpus --train-clips 400
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from tta.audio.io import save_audio
from tta.evaluation import evaluate

MAX_SECONDS = 10.0


def link_split(rows: list[dict], corpus: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        target = folder / f"{r['id']}{Path(r['path']).suffix}"
        if not target.exists():
            target.symlink_to(corpus / r["path"])


def fake_generations(rows: list[dict], folder: Path, kind: str, seed: int = 0) -> None:
    """One WAV per test clip, same name and length (up to 10 s): zeros, or white noise with peak 0.5."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for r in rows:
        n = int(min(r["duration"], MAX_SECONDS) * 16000)
        wav = np.zeros(n, np.float32) if kind == "silence" else rng.uniform(-0.5, 0.5, n).astype(np.float32)
        save_audio(folder / f"{r['id']}.wav", wav)


def write_prompts(rows: list[dict], path: Path, mismatched: bool = False) -> None:
    """Each clip's first caption, or (mismatched) the first caption of a clip of another class."""
    captions = [r["captions"][0] for r in rows]
    labels = [r["labels"][0] for r in rows]
    out = []
    for i, r in enumerate(rows):
        j = i
        if mismatched:
            j = next(
                k % len(rows)
                for k in range(i + len(rows) // 2, i + 3 * len(rows))
                if labels[k % len(rows)] != labels[i]
            )
        out.append({"file": f"{r['id']}.flac", "prompt": captions[j], "label": labels[i]})
    path.write_text("".join(json.dumps(o) + "\n" for o in out))


def show(title: str, report: dict) -> None:
    metrics = "  ".join(f"{k}={v:.4g}" for k, v in report["metrics"].items())
    print(f"{title:<34} {metrics}  ({report['settings']['seconds']:.1f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("~/.cache/tta/corpus").expanduser())
    parser.add_argument("--train-clips", type=int, default=400)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()

    rows = [json.loads(line) for line in (args.corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    test = [r for r in rows if r["split"] == "test"]
    train = [r for r in rows if r["split"] == "train"]
    train = [train[i] for i in sorted(np.random.default_rng(0).permutation(len(train))[: args.train_clips])]
    work = args.work or Path(tempfile.mkdtemp(prefix="tta-bench-eval-"))
    link_split(test, args.corpus, work / "test")
    link_split(train, args.corpus, work / "train")
    fake_generations(test, work / "silence", "silence")
    fake_generations(test, work / "noise", "noise")
    write_prompts(test, work / "own.jsonl")
    write_prompts(test, work / "mismatched.jsonl", mismatched=True)
    own = work / "own.jsonl"
    print(f"test clips: {len(test)}, train sample: {len(train)}, work folder: {work}")

    # Cache: first run with an empty cache, then the same run again.
    os.environ["TTA_CACHE"] = str(work / "cache")
    cold = evaluate(work / "test", work / "train", prompts=own, progress=False)
    warm = evaluate(work / "test", work / "train", prompts=own, progress=False)
    show("test vs train (cold cache)", cold)
    show("test vs train (warm cache)", warm)
    print(f"cache: {cold['settings']['seconds']:.1f} s -> {warm['settings']['seconds']:.1f} s", flush=True)
    show("test vs test", evaluate(work / "test", work / "test", prompts=own, progress=False))
    for kind in ("silence", "noise"):
        prompts = work / f"{kind}.jsonl"
        prompts.write_text(own.read_text().replace('.flac"', '.wav"'))
        show(f"{kind} vs test", evaluate(work / kind, work / "test", prompts=prompts, paired=True, progress=False))
    mism = evaluate(work / "test", work / "test", prompts=work / "mismatched.jsonl", progress=False)
    show("test, own captions", cold)
    show("test, mismatched captions", mism)
    own_cos = [c["clap_cosine"] for c in cold["clips"]]
    mism_cos = [c["clap_cosine"] for c in mism["clips"]]
    wins = float(np.mean(np.array(own_cos) > np.array(mism_cos)))
    print(
        f"CLAP score own {np.mean(own_cos):.4f} vs mismatched {np.mean(mism_cos):.4f}; own wins on {wins:.1%} of clips"
    )


if __name__ == "__main__":
    main()
