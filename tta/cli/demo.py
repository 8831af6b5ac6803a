"""``tta demo``: serve the Gradio page (text-to-audio and editing) on this machine."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from tta.demo.app import DEFAULT_HOST, DEFAULT_PORT

    p = subparsers.add_parser(
        "demo",
        help="web demo (Gradio): generate and edit audio in the browser",
        description="Serve the Gradio demo. It listens on 127.0.0.1 only unless --host says otherwise (0.0.0.0 "
        "exposes it to the network). Needs the demo extra: pip install 'tta[demo]'.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    p.add_argument("--model", default=None, help="model folder shown first and loaded at start")
    p.add_argument(
        "--models-dir", default=None, help="folder whose model sub-folders the dropdown lists (default: checkpoints/)"
    )
    p.add_argument(
        "--retrieval",
        default=None,
        metavar="INDEX",
        help="a retrieval index (`tta index build`) the page offers to retrieval-conditioned models",
    )
    p.add_argument(
        "--adapters",
        default=None,
        metavar="DIR",
        help="a folder of LoRA adapters (`tta finetune` .safetensors) the page offers in a dropdown",
    )
    p.add_argument("--device", default="cpu", help="torch device (default %(default)s)")
    p.add_argument("--concurrency", type=int, default=2, help="requests run at once; the rest queue (%(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tta.demo.app import launch
    from tta.errors import InputError

    if not 0 < args.port < 65536:
        raise InputError(f"--port must be between 1 and 65535, got {args.port}")
    if args.concurrency < 1:
        raise InputError(f"--concurrency must be >= 1, got {args.concurrency}")
    print(f"tta demo on http://{args.host}:{args.port} (Ctrl+C stops it)")
    launch(
        args.host, args.port, args.model, args.models_dir, args.device, args.concurrency,
        retrieval=args.retrieval, adapters_dir=args.adapters,
    )  # fmt: skip
    return 0
