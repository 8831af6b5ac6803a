"""``tta reconstruct IN... -o DIR``: hear the ceiling of a model.

Each input goes waveform -> log-mel -> VAE -> vocoder -> waveform (``--vocoder-only``: without the VAE) through
:func:`tta.evaluation.reconstruction.reconstruct`, and is written as ``DIR/<input stem>.wav`` (16 kHz, 16-bit,
the input's level and length). Inputs are audio files (anything :func:`tta.audio.io.load_audio` reads) or folders
(their audio files, not recursive). Only ``vae/`` and ``vocoder/`` of the model folder are read.

Everything is checked before the model loads: unreadable inputs, two inputs with one stem, an output that would
overwrite an input.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tta.errors import InputError, ModelLoadError

METRICS = ("log_mel_l1", "lsd", "mrstft")
MIN_SAMPLES = 513  # the log-mel's reflect padding needs more than n_fft / 2 samples
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".opus", ".aif", ".aiff", ".aifc"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reconstruct",
        help="round-trip audio through the VAE and vocoder to hear the model's ceiling",
        description="Round-trip audio files through the model's decoder: waveform -> log-mel -> VAE -> vocoder -> "
        "waveform, written as DIR/<input name>.wav (16 kHz). What a generation can sound like at best.",
        epilog="examples:\n"
        "  tta reconstruct dog.wav street.flac -o recon/\n"
        "  tta reconstruct clips/ -o recon/ --vocoder-only --metrics",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="audio files or folders of audio files")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="folder for the outputs")
    p.add_argument("--vocoder-only", action="store_true", help="skip the VAE: true log-mel -> vocoder")
    p.add_argument(
        "--model", default=None, metavar="PATH", help="model folder with vae/ and vocoder/ (default: checkpoints/)"
    )
    p.add_argument("--metrics", action="store_true", help="print log-mel L1, LSD and MR-STFT of each output")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def collect_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given, folders expanded to their audio files (sorted); a missing path or empty folder is an error."""
    files: list[Path] = []
    for path in inputs:
        path = path.expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise InputError(f"no audio files in folder {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"input not found: {path}")
    return files


def plan_outputs(files: list[Path], output: Path) -> list[tuple[Path, Path]]:
    """(input, ``output/<stem>.wav``) pairs, a file given twice once; two inputs with one stem, or an output
    that would overwrite an input, are errors."""
    output = output.expanduser()
    if output.exists() and not output.is_dir():
        raise InputError(f"-o {output} exists and is not a folder")
    by_stem: dict[str, Path] = {}
    for f in files:
        if f.stem in by_stem and by_stem[f.stem].resolve() != f.resolve():
            out = output / f"{f.stem}.wav"
            raise InputError(f"two inputs would both be written as {out}: {by_stem[f.stem]} and {f}")
        by_stem.setdefault(f.stem, f)
    sources = {f.resolve() for f in files}
    pairs = [(f, output / f"{stem}.wav") for stem, f in by_stem.items()]
    for _, out in pairs:
        if out.resolve() in sources:
            raise InputError(f"refusing to overwrite input {out} (write to another folder with -o)")
    return pairs


def probe(path: Path, sample_rate: int, min_samples: int) -> None:
    """Fail now if ``path`` cannot be read as audio or is too short (a header read; a full decode when libsndfile
    cannot read the file)."""
    import soundfile as sf

    from tta.audio.io import load_audio

    try:
        info = sf.info(str(path))
        samples = info.frames * sample_rate / info.samplerate
    except Exception:
        samples = load_audio(path, sample_rate).size  # mp3/m4a and friends: decoded, or one clear InputError
    if samples < min_samples:
        raise InputError(f"{path} is too short: {samples / sample_rate:.3f} s, need {min_samples} samples or more")


def load_models(model: str | None, vocoder_only: bool):
    """(vae or None, vocoder) from ``model`` or the default model folder."""
    from transformers.utils import logging as transformers_logging

    from tta.loading import load_vae, load_vocoder
    from tta.paths import default_model_dir

    transformers_logging.disable_progress_bar()
    folder = Path(model).expanduser() if model is not None else default_model_dir()
    try:
        vocoder = load_vocoder(folder)
        vae = None if vocoder_only else load_vae(folder)
    except ModelLoadError as err:
        if model is None:
            raise ModelLoadError(f"{err} (the default model; pass --model PATH or set $TTA_MODEL)") from err
        raise
    return vae, vocoder


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from tta.audio.io import SAMPLE_RATE, load_audio, save_audio
    from tta.audio.mel import MelSpectrogram
    from tta.cli.common import check_writable
    from tta.evaluation.reconstruction import reconstruct, round_trip_metrics

    # 1. Check the inputs and outputs before any model loads
    pairs = plan_outputs(collect_inputs(args.inputs), args.output)
    for src, _ in pairs:
        probe(src, SAMPLE_RATE, MIN_SAMPLES)
    check_writable([dst for _, dst in pairs])

    # 2. Load the vocoder (and the VAE)
    vae, vocoder = load_models(args.model, args.vocoder_only)
    mel = MelSpectrogram(sample_rate=SAMPLE_RATE, n_mels=int(vocoder.config.model_in_dim))
    path_name = "vocoder" if vae is None else "vae+vocoder"

    # 3. Round trip each file
    start, totals = time.perf_counter(), {}
    for src, dst in tqdm(pairs, desc="reconstruct", unit="file", disable=args.no_progress):
        wav = load_audio(src, SAMPLE_RATE)
        try:
            out = reconstruct(wav, vae, vocoder, mel)
        except InputError as err:
            raise InputError(f"{src}: {err}") from err
        save_audio(dst, out, SAMPLE_RATE)
        line = f"{src} -> {dst} ({out.size / SAMPLE_RATE:.2f} s)"
        if args.metrics:
            scores = round_trip_metrics(wav, out, mel)
            for key in METRICS:
                totals[key] = totals.get(key, 0.0) + scores[key]
            line += "  " + format_metrics(scores)
        tqdm.write(line)

    # 4. Summary
    elapsed = time.perf_counter() - start
    summary = f"reconstructed {len(pairs)} file(s) ({path_name}) into {args.output} in {elapsed:.1f} s"
    if totals:
        summary += "; mean " + format_metrics({k: v / len(pairs) for k, v in totals.items()})
    print(summary)
    return 0


def format_metrics(scores: dict[str, float]) -> str:
    return f"log-mel L1 {scores['log_mel_l1']:.3f}, LSD {scores['lsd']:.2f} dB, MR-STFT {scores['mrstft']:.3f}"
