"""`tta train STAGE`: train one stage with the shared trainer (``tta/training``), or evaluate it.

Each stage is one entry of ``STAGES`` (default configs + an optional ``--eval-only`` evaluator); a new stage
is a trainer in ``tta.builders.TRAINERS`` and a row here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tta.errors import InputError
from tta.paths import REPO_ROOT

# stage -> (default train config, default model config, help)
STAGES: dict[str, tuple[str, str, str]] = {
    "clap": ("configs/train/clap.yaml", "configs/model/clap.yaml", "tta's own CLAP (MiniLM text + mel encoder)"),
    "vae": ("configs/train/vae.yaml", "configs/model/vae_small.yaml", "the mel-spectrogram VAE"),
    "vocoder": (
        "configs/train/vocoder.yaml",
        "configs/model/vocoder_small.yaml",
        "the vocoder (the ISTFT vocoder by default; HiFi-GAN configs for GPUs)",
    ),
    "ldm": ("configs/train/ldm.yaml", "configs/model/unet_small.yaml", "the latent diffusion UNet"),
    "distill": (
        "configs/train/distill.yaml",
        "configs/model/lcm_lora.yaml",
        "a few-step student of a trained UNet (latent consistency distillation, LCM-LoRA)",
    ),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a model stage (clap, ...)")
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", parser_class=type(parser))
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    for stage, (train_cfg, model_cfg, help_text) in STAGES.items():
        p = stages.add_parser(stage, help=help_text, description=f"Train {help_text}.")
        p.add_argument("--config", default=str(REPO_ROOT / train_cfg), help=f"training config (default {train_cfg})")
        p.add_argument("--model-config", default=str(REPO_ROOT / model_cfg), help=f"model config ({model_cfg})")
        p.add_argument("--corpus", help="corpus root with manifest.jsonl (default ~/.cache/tta/corpus)")
        p.add_argument("--run-dir", default=f"runs/{stage}", help="checkpoints, logs (default %(default)s)")
        p.add_argument("--max-steps", type=int, help="override max_steps")
        p.add_argument(
            "--resume", action=argparse.BooleanOptionalAction, default=True, help="continue from the run's latest"
        )
        p.add_argument("--export", dest="export_dir", help="also write the final model here (e.g. checkpoints/clap)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
        p.add_argument("--eval-only", action="store_true", help="evaluate a trained model instead of training")
        p.add_argument("--model", help="with --eval-only: the model folder (default: the shipped one)")
        p.add_argument("--split", default="test", help="with --eval-only: corpus split (default test)")
        p.add_argument("--json", dest="json_out", help="with --eval-only: also write the metrics to this file")
        if stage == "ldm":
            p.add_argument(
                "--retrieval",
                metavar="INDEX",
                help="train a retrieval-conditioned UNet on the neighbours in INDEX (`tta index build`; Re-AudioLDM)",
            )
        if stage == "clap":
            p.add_argument(
                "--ensemble",
                nargs="+",
                metavar="CLAP",
                help="instead of training, join these CLAP folders (members trained with init_from=FIRST "
                "init_parts=text freeze_text=true) into one whose audio tower averages theirs; writes --export",
            )
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. lr=5e-4")
        p.set_defaults(func=_run, stage=stage)


def _run(args: argparse.Namespace) -> int:
    if args.eval_only:
        return EVALUATORS[args.stage](args)
    if getattr(args, "ensemble", None):
        return _ensemble_clap(args)
    from tta.builders import build_trainer

    overrides = list(args.overrides)
    if getattr(args, "retrieval", None):
        overrides.append(f"retrieval={args.retrieval}")
    trainer = build_trainer(
        args.stage,
        args.config,
        args.model_config,
        overrides=overrides,
        run_dir=args.run_dir,
        corpus=args.corpus,
        max_steps=args.max_steps,
        resume=args.resume,
        export_dir=args.export_dir,
        progress=False if args.no_progress else None,
    )
    metrics = trainer.fit()
    if metrics:
        print(json.dumps(metrics, indent=2))
    return 0


def _ensemble_clap(args: argparse.Namespace) -> int:
    from tta.errors import ModelLoadError
    from tta.models.clap.minilm_mel import ensemble_claps

    if not args.export_dir:
        raise InputError("--ensemble writes the joined CLAP to --export DIR; give one")
    try:
        model = ensemble_claps(args.ensemble)
    except (ModelLoadError, ValueError) as err:  # unreadable or mismatched folders, or fewer than two
        raise InputError(str(err)) from err
    model.save_pretrained(args.export_dir)
    members = len(model.audio_encoder.members)
    print(f"wrote {args.export_dir}: a CLAP whose audio tower averages {members} towers ({', '.join(args.ensemble)})")
    return 0


def _eval_clap(args: argparse.Namespace) -> int:
    from tta.data.captions import CLASSES, class_prompt
    from tta.data.prompts import PARAPHRASE_PROMPTS
    from tta.data.splits import HELD_OUT_PAIRS
    from tta.evaluation.clap_zero_shot import evaluate_clap, load_split
    from tta.models.clap import load_clap
    from tta.paths import cache_dir

    clap = load_clap(args.model)
    corpus = args.corpus or cache_dir() / "corpus"
    items = load_split(corpus, args.split)
    metrics = evaluate_clap(
        clap,
        items,
        list(CLASSES),
        HELD_OUT_PAIRS,
        prompt_fn=class_prompt,
        extra_paraphrases=PARAPHRASE_PROMPTS,
        per_class=True,
    )
    text = json.dumps({"split": args.split, **metrics}, indent=2)
    print(text)
    if args.json_out:
        from tta.audio.io import write_atomic

        write_atomic(args.json_out, text + "\n")
    return 0


def _eval_round_trip(args: argparse.Namespace) -> int:
    """Round trips of a corpus split through the model's vocoder (and VAE, for ``vae``) vs Griffin-Lim."""
    from tta.audio.mel import MelSpectrogram
    from tta.evaluation.clap_zero_shot import load_split
    from tta.evaluation.reconstruction import evaluate_round_trip
    from tta.loading import load_vae, load_vocoder
    from tta.paths import cache_dir, default_model_dir

    folder = args.model or default_model_dir()
    vocoder = load_vocoder(folder)
    vae = load_vae(folder) if args.stage == "vae" else None
    mel = MelSpectrogram(sample_rate=int(vocoder.config.sampling_rate), n_mels=int(vocoder.config.model_in_dim))
    corpus = Path(args.corpus) if args.corpus else cache_dir() / "corpus"
    if not (corpus / "manifest.jsonl").is_file():
        raise InputError(f"no corpus at {corpus} (manifest.jsonl missing); build it with `tta data build`")
    items = load_split(corpus, args.split, max_seconds=10.0)
    if not items:
        raise InputError(f"the corpus at {corpus} has no clip in split {args.split!r}")
    clips = [it["audio"].numpy() for it in items]
    results = evaluate_round_trip(clips, vae, vocoder, mel, progress=not args.no_progress)
    text = json.dumps({"split": args.split, "model": str(folder), **results}, indent=2)
    print(text)
    if args.json_out:
        from tta.audio.io import write_atomic

        write_atomic(args.json_out, text + "\n")
    return 0


def _eval_generation(args: argparse.Namespace) -> int:
    """Text alignment and FAD of the model's generations (tta.evaluation.generation) against a corpus split."""
    from tta.evaluation.generation import evaluate_text_to_audio
    from tta.paths import cache_dir
    from tta.pipelines import TTAPipeline

    corpus = Path(args.corpus) if args.corpus else cache_dir() / "corpus"
    if not (corpus / "manifest.jsonl").is_file():
        raise InputError(f"no corpus at {corpus} (manifest.jsonl missing); build it with `tta data build`")
    pipe = TTAPipeline.from_pretrained(args.model)
    results = evaluate_text_to_audio(pipe, corpus, split=args.split)
    text = json.dumps({"model": str(pipe.name_or_path), **results}, indent=2)
    print(text)
    if args.json_out:
        from tta.audio.io import write_atomic

        write_atomic(args.json_out, text + "\n")
    return 0


EVALUATORS = {"clap": _eval_clap, "vae": _eval_round_trip, "vocoder": _eval_round_trip, "ldm": _eval_generation}
