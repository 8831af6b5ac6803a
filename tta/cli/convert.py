"""``tta convert CKPT -o OUT_DIR``: an original AudioLDM checkpoint -> a tta model folder."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an original AudioLDM checkpoint (.ckpt or .safetensors) into a tta model folder",
        description=(
            "Convert an original AudioLDM checkpoint (the Lightning .ckpt with the diffusion UNet, the VAE, "
            "the HiFi-GAN and CLAP inside, or the same state dict as .safetensors) into a tta model folder. "
            "Nothing is downloaded."
        ),
    )
    parser.add_argument("checkpoint", metavar="CKPT", help="original AudioLDM checkpoint (.ckpt or .safetensors)")
    parser.add_argument("-o", "--output", metavar="OUT_DIR", required=True, help="tta model folder to write")
    parser.add_argument(
        "--tokenizer",
        metavar="DIR",
        help="local roberta-base tokenizer folder for the CLAP text encoder (default: the local Hugging Face cache)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    parser.add_argument("--no-clap", action="store_true", help="skip CLAP entirely (no tokenizer needed)")
    parser.add_argument(
        "--clap-text-only",
        action="store_true",
        help="convert only CLAP's text tower, not its HTSAT audio branch (no audio embeddings or re-ranking)",
    )
    parser.add_argument(
        "--no-ema",
        action="store_true",
        help="take the UNet's raw weights, not its EMA weights (the default when present, as AudioLDM generates)",
    )
    parser.add_argument(
        "--num-head-channels",
        type=int,
        metavar="N",
        help="channels per UNet attention head (default: 32, or 64 for AudioLDM-L as in the original configs)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tta.convert import ConvertOptions, convert_audioldm_checkpoint
    from tta.errors import InputError

    if args.num_head_channels is not None and args.num_head_channels <= 0:
        raise InputError("--num-head-channels must be positive")
    options = ConvertOptions(
        tokenizer=args.tokenizer,
        num_head_channels=args.num_head_channels,
        overwrite=args.overwrite,
        with_clap=not args.no_clap,
        clap_audio=not args.clap_text_only,
        ema=not args.no_ema,
    )
    folder = convert_audioldm_checkpoint(args.checkpoint, args.output, options)
    print(f"wrote {folder}")
    return 0
