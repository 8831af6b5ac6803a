"""`tta` command line: a thin dispatcher over sub-command modules.

Each module in ``SUBCOMMANDS`` defines ``register(subparsers)``, which adds its parser and sets
``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit code or None).
Modules are imported only when listed, so one broken optional dependency cannot break ``tta --help``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tta.errors import TTAError

# (module under tta.cli, what it provides); order is the order in `tta --help`.
SUBCOMMANDS = [
    "generate",  # tta generate
    "convert",  # tta convert
    "data",  # tta data build ...
    "edit",  # tta edit (style transfer, inpainting, super-resolution)
    "eval",  # tta eval
    "reconstruct",  # tta reconstruct (VAE + vocoder round trip)
    "train",  # tta train clap|vae|vocoder|ldm
    "prior",  # tta prior build (retrieval prior of a model folder)
    "index",  # tta index build|info (retrieval index of a sound library, Re-AudioLDM)
    "demo",  # tta demo (Gradio)
    "finetune",  # tta finetune (LoRA adapters / full fine-tunes on a folder)
    "lora",  # tta lora info
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit code 2
        self.print_usage(sys.stderr)
        self.exit(2, f"tta: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from tta import __version__

    parser = _Parser(prog="tta", description="tta: text-to-audio generation, training and evaluation.")
    parser.add_argument("--version", action="version", version=f"tta {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"tta.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"tta.cli.{name}":
                continue  # sub-command not written yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except TTAError as err:
        print(f"tta: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tta: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def run() -> None:  # pragma: no cover - console entry point wrapper
    sys.exit(main())
