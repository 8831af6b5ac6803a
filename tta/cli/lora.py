"""`tta lora info ADAPTER`: what a LoRA adapter file holds (config, base model hash, captions, settings, size)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("lora", help="inspect LoRA adapters (tta lora info ADAPTER)")
    sub = parser.add_subparsers(dest="lora_command", metavar="COMMAND", parser_class=type(parser))
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    info = sub.add_parser("info", help="list what an adapter holds")
    info.add_argument("adapter", help="adapter file (.safetensors, from tta finetune)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    from tta.lora import describe, read_adapter

    info = describe(read_adapter(args.adapter))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key == "captions":
            print(f"captions ({len(value)}):")
            for caption in value:
                print(f"  {caption}")
        elif key == "training":
            print("training: " + " ".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            print(f"{key}: {value}")
    return 0
