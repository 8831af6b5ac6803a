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


def parse_spec(spec: str) -> tuple[str, float]:
    """``ADAPTER[:SCALE]`` -> (path, scale); the scale defaults to 1."""
    from tta.errors import InputError

    path, sep, scale = spec.rpartition(":")
    if sep and path:
        try:
            return path, float(scale)
        except ValueError:
            pass
    if not spec:
        raise InputError("--lora needs ADAPTER[:SCALE]")
    return spec, 1.0


def apply_lora_flags(pipe, specs: list[str] | None, recorded: list[dict] | None = None) -> None:
    """Load each ``--lora ADAPTER[:SCALE]`` on ``pipe``, in order. With ``recorded`` (a sidecar's ``lora``
    list), each adapter's file must still have the hash the sidecar recorded."""
    from tta.errors import InputError

    for i, spec in enumerate(specs or []):
        path, scale = parse_spec(spec)
        pipe.load_lora(path, scale)
        if recorded is not None and i < len(recorded):
            now = pipe.model_settings()["lora"][i]["hash"]
            if now != recorded[i].get("hash"):
                raise InputError(
                    f"--lora {path}: the adapter's hash is {now}, the sidecar recorded {recorded[i].get('hash')}"
                )


def sidecar_specs(meta: dict) -> list[str]:
    """The ``--lora`` flags that reload a sidecar's adapters (its ``lora`` list)."""
    return [f"{entry['path']}:{entry['scale']}" for entry in meta.get("lora") or []]
