"""`tta finetune DIR -o ADAPTER`: a LoRA adapter (or ``--full``: a whole model folder) fitted to a folder of
captioned recordings (:class:`tta.training.finetune.FinetuneTrainer`).

Captions come from ``--captions FILE`` (CSV/JSON), ``NAME.txt`` beside each recording, or
``--captions-from-names``. The defaults (``--steps``, ``--batch-size``) fit 20 clips on the shipped model in about
70 s on 2 quiet CPU cores (checkpoints/README.md, "Fine-tuning on a new class"), far within 15 minutes. A run killed at any point continues from its last
checkpoint in ``--run-dir`` when started again with the same arguments.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

DEFAULT_STEPS = 300
DEFAULT_BATCH = 4


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune on a folder of your own sounds (LoRA adapter, or --full)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("folder", help="folder of recordings (wav/flac/ogg/mp3), searched recursively")
    p.add_argument("-o", "--output", required=True, help="adapter file (.safetensors), or with --full a model folder")
    p.add_argument("--model", help="base model folder (default: the shipped model / $TTA_MODEL)")
    p.add_argument("--captions", help="CSV or JSON of file -> caption(s)")
    p.add_argument("--captions-from-names", action="store_true", help="caption each file by its name")
    p.add_argument("--full", action="store_true", help="fine-tune every UNet weight (writes a model folder)")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank (default %(default)s)")
    p.add_argument("--alpha", type=float, help="LoRA alpha (default: the rank)")
    p.add_argument("--conv", action="store_true", help="also adapt the ResNet convolutions")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimizer steps (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="windows per step (default %(default)s)")
    p.add_argument("--lr", type=float, help="learning rate (default 5e-4 for LoRA, 2e-5 with --full)")
    p.add_argument("--clip-seconds", type=float, default=2.56, help="training window (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", help="checkpoints, previews, logs (default: OUTPUT's name + '.run')")
    p.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints")
    p.add_argument("--preview-every", type=int, default=100, help="steps between audio previews (0: at the end)")
    p.add_argument(
        "--index-out",
        help="where to write the folder's retrieval index, which extends the model's prior per call "
        "(`tta generate --retrieval INDEX`; default: OUTPUT's name + '.index' when the model has a prior)",
    )
    p.add_argument("--no-index", action="store_true", help="write no retrieval index")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True, help="continue the run dir")
    p.add_argument("--no-progress", action="store_true", help="a log line per step instead of the bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tta.errors import InputError
    from tta.training.finetune import FinetuneTrainer

    output = Path(args.output)
    if not args.full and output.suffix != ".safetensors":
        raise InputError(f"-o {output}: an adapter is a .safetensors file (use --full for a model folder)")
    for flag, value in (("--steps", args.steps), ("--batch-size", args.batch_size)):
        if value < 1:
            raise InputError(f"{flag} must be >= 1, got {value}")
    run_dir = Path(args.run_dir) if args.run_dir else output.with_name(output.name + ".run")
    lr = args.lr if args.lr is not None else (2e-5 if args.full else 5e-4)
    trainer = FinetuneTrainer(
        data=args.folder,
        output=output,
        base=args.model,
        captions=args.captions,
        captions_from_names=args.captions_from_names,
        rank=args.rank,
        alpha=args.alpha,
        conv=args.conv,
        full=args.full,
        clip_seconds=args.clip_seconds,
        preview_every=args.preview_every,
        index_output=index_output(args, output),
        run_dir=run_dir,
        max_steps=args.steps,
        batch_size=args.batch_size,
        lr=lr,
        warmup_steps=min(20, max(1, args.steps // 10)),
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=2,
        log_every=max(1, min(10, args.steps // 20)),
        seed=args.seed,
        num_threads=args.threads,
        resume=args.resume,
        progress=not args.no_progress,
        run_config={k: v for k, v in vars(args).items() if k != "func"},
    )
    trainer.fit()
    if output.exists():
        lora = f" --lora {shlex.quote(str(output))}" if not args.full else ""
        model = f" --model {shlex.quote(str(output))}" if args.full else ""
        index = f" --retrieval {shlex.quote(str(trainer.index_output))}" if trainer.index_output else ""
        print(f"generate with: tta generate 'PROMPT'{model}{lora}{index}")
    return 0


def index_output(args: argparse.Namespace, output: Path) -> Path | None:
    """``--index-out``, else ``OUTPUT.index`` beside the output when the base model has a prior; None with
    ``--no-index``."""
    from tta.errors import InputError
    from tta.lora.prior import index_path_for
    from tta.paths import default_model_dir

    if args.no_index:
        if args.index_out:
            raise InputError("--index-out and --no-index contradict each other")
        return None
    if args.index_out:
        return Path(args.index_out)
    base = Path(args.model) if args.model else default_model_dir()
    return index_path_for(output) if (base / "prior").is_dir() else None
