"""``tta prior build``: the retrieval prior of a model folder (``prior/``, see :mod:`tta.models.prior`).

It embeds real recordings with the model's own CLAP audio tower (each clip: the mean of up to four 5 s windows
of its first 20 s, as the evaluation does) and writes the bank with its settings to ``MODEL/prior/``. The
recordings are a split of the corpus (default: the training split the UNet learnt from) or a folder of the
user's own sounds (``--audio DIR``, searched recursively). Unreadable or empty files are skipped and counted.

Recordings with captions (the corpus manifest's; in a folder, a ``NAME.txt`` beside ``NAME.wav``, one caption a
line) also get a retrieval key: the mean CLAP text embedding of their captions, so that prompts find them by
text-to-text similarity (``--key-weight``); a recording without captions is found by its audio embedding.
Text-to-text cosines run higher than text-to-audio ones, so in a partly captioned folder the captioned
recordings are preferred; caption all of a folder or none of it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tta.errors import InputError

if TYPE_CHECKING:  # torch is imported when a command runs, not when the CLI starts
    import torch


def register(subparsers) -> None:
    parser = subparsers.add_parser("prior", help="build a model's retrieval prior (text -> audio embeddings)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    p = actions.add_parser(
        "build",
        help="embed real recordings with the model's CLAP and write MODEL/prior/",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default=None, help="tta model folder (default: the shipped checkpoints/)")
    p.add_argument("--corpus", default=None, help="corpus root with manifest.jsonl (default ~/.cache/tta/corpus)")
    p.add_argument("--split", default="train", help="corpus split(s), '+'-joined (default %(default)s)")
    p.add_argument("--audio", type=Path, default=None, metavar="DIR", help="a folder of recordings instead")
    p.add_argument("--top-k", type=int, default=64, help="neighbours averaged per prompt (default %(default)s)")
    p.add_argument(
        "--temperature", type=float, default=0.03, help="softmax temperature; 0: equal weights (default %(default)s)"
    )
    p.add_argument("--text-weight", type=float, default=0.0, help="share of the text embedding kept (0-1)")
    p.add_argument(
        "--max-sources",
        type=int,
        default=2,
        help="most sounds one prompt is composed of (tta.sampling.composition); 1: off (default %(default)s)",
    )
    p.add_argument(
        "--min-match",
        type=float,
        default=0.6,
        help="a prompt part is a sound if a recording matches it at least this well (cosine; %(default)s)",
    )
    p.add_argument(
        "--max-cosine",
        type=float,
        default=0.5,
        help="two parts are two sounds if their mappings' cosine is at most this (default %(default)s)",
    )
    p.add_argument(
        "--key-weight",
        type=float,
        default=1.0,
        help="share of caption (text-to-text) similarity in the retrieval score, the rest text-to-audio; "
        "recordings without captions always count by audio (default %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def corpus_clips(corpus: Path, splits: str) -> list[tuple[Path, list[str]]]:
    """(path, captions) of the corpus clips in ``splits`` ('+'-joined), in manifest order."""
    manifest = corpus / "manifest.jsonl"
    if not manifest.is_file():
        raise InputError(f"no corpus at {corpus} ({manifest.name} not found): run `tta data build`, or give --audio")
    wanted = set(splits.split("+"))
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    clips = [(corpus / r["path"], list(r.get("captions") or [])) for r in rows if r.get("split") in wanted]
    if not clips:
        raise InputError(f"{manifest}: no clips in split {splits!r}")
    return clips


def folder_clips(folder: Path) -> list[tuple[Path, list[str]]]:
    """(path, captions) of the audio files under ``folder``; captions from a ``.txt`` of the same stem."""
    from tta.retrieval.sources import folder_entries

    if not folder.is_dir():
        raise InputError(f"--audio {folder}: not a folder")
    try:
        entries = folder_entries(folder)
    except InputError as err:
        raise InputError(f"--audio {err}") from None
    return [(Path(e["path"]), e["captions"]) for e in entries]


def caption_keys(clap, captions: list[list[str]], audio: torch.Tensor) -> torch.Tensor:
    """Retrieval keys [N, D]: each recording's mean caption text embedding (the prior normalises them); its audio
    embedding where it has no captions."""
    import torch

    from tta.retrieval.build import caption_embeddings

    text = caption_embeddings(clap, captions)
    captioned = torch.tensor([bool(caps) for caps in captions])[:, None]
    return torch.where(captioned, text, audio.float())


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from tta.audio.io import load_audio
    from tta.evaluation.clap_zero_shot import window_embedding
    from tta.loading import check_model_folder, clap_fingerprint
    from tta.models.clap import load_clap
    from tta.models.prior import RetrievalPrior
    from tta.paths import cache_dir, default_model_dir

    model = Path(args.model).expanduser() if args.model else default_model_dir()
    check_model_folder(model)
    if not (model / "clap").is_dir():
        raise InputError(f"{model} has no clap/ folder: a prior needs a tta model folder with its own CLAP")
    clips = (
        folder_clips(args.audio)
        if args.audio
        else corpus_clips(Path(args.corpus or cache_dir() / "corpus"), args.split)
    )
    settings = dict(
        top_k=args.top_k,
        temperature=args.temperature,
        text_weight=args.text_weight,
        max_sources=args.max_sources,
        min_match=args.min_match,
        max_cosine=args.max_cosine,
        key_weight=args.key_weight,
    )
    RetrievalPrior(torch.ones(1, 1), **settings)  # settings are checked before the (slow) embedding
    clap = load_clap(model / "clap")
    embeddings, captions, skipped = [], [], []
    for path, caps in tqdm(clips, desc="embedding", unit="clip", disable=args.no_progress):
        try:
            wav = load_audio(path)
        except Exception as err:  # unreadable / not audio: reported, never fatal
            skipped.append(f"{path}: {err}")
            continue
        if wav.size == 0 or not abs(wav).max() > 0:
            skipped.append(f"{path}: silent or empty")
            continue
        with torch.no_grad():
            embeddings.append(window_embedding(clap, torch.from_numpy(wav[: 20 * 16000]), 5.0, 4).cpu())
        captions.append(caps)
    if not embeddings:
        raise InputError(f"none of the {len(clips)} recordings could be embedded")
    bank = torch.stack(embeddings)
    captioned = sum(1 for caps in captions if caps)
    keys = caption_keys(clap, captions, bank) if captioned else None
    prior = RetrievalPrior(bank, keys=keys, **settings)
    tmp = Path(tempfile.mkdtemp(prefix=".prior.", dir=model))
    tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is meant to be shared
    try:  # written beside, then swapped in: an interrupted build never leaves a half-written prior/
        prior.save_pretrained(tmp, clap_fingerprint=clap_fingerprint(model / "clap"))
        old = model / ".prior.old"
        if (model / "prior").exists():
            shutil.rmtree(old, ignore_errors=True)
            (model / "prior").rename(old)
        tmp.rename(model / "prior")
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for line in skipped:
        print(f"skipped {line}")
    print(
        f"{model / 'prior'}: {len(embeddings)} recordings embedded ({captioned} with captions), {len(skipped)} "
        f"skipped; {prior.config}"
    )
    return 0
