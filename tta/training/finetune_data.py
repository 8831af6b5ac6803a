"""What ``tta finetune`` learns from: a folder of recordings with captions, as fixed windows of latents and CLAP
audio embeddings (encoded once, deterministically, so a resumed run sees exactly the data it had)."""

from __future__ import annotations

from pathlib import Path

import torch

from tta.errors import InputError

CAPTION_ROUTES = (
    "give captions with --captions FILE (CSV or JSON: file, caption), a NAME.txt beside each NAME.wav, "
    "or --captions-from-names to use the file names"
)


def captioned_entries(folder: Path, captions_file: Path | None, from_names: bool) -> list[dict]:
    """The folder's recordings and their captions (the retrieval index's readers); every one needs a caption."""
    from tta.retrieval.sources import folder_entries

    entries = folder_entries(Path(folder), captions_file, from_names)
    missing = [e["id"] for e in entries if not e["captions"]]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(f"{folder}: no caption for {missing[0]}{more}; {CAPTION_ROUTES}")
    return entries


def windows(wav: torch.Tensor, length: int, max_windows: int) -> list[torch.Tensor]:
    """Up to ``max_windows`` windows of ``length`` samples spread over ``wav`` (a short clip padded with silence)."""
    if wav.numel() <= length:
        return [torch.nn.functional.pad(wav, (0, length - wav.numel()))]
    count = min(max_windows, -(-wav.numel() // length))
    starts = torch.linspace(0, wav.numel() - length, count).round().long().tolist()
    return [wav[s : s + length] for s in starts]


@torch.no_grad()
def encode_folder(entries: list[dict], vae, clap, mel, seconds: float, multiple: int, max_windows: int) -> list[dict]:
    """Each recording -> windows of ``seconds`` (whole multiples of ``multiple`` mel frames) -> items
    ``{"latents", "audio_emb", "caption", "id"}`` (the VAE posterior's mode; one item per window and caption)."""
    from tqdm.auto import tqdm

    from tta.audio.io import load_audio
    from tta.pipelines.codec import encode_mel

    frames = max(multiple, int(round(seconds * mel.sample_rate)) // mel.hop_length // multiple * multiple)
    length = frames * mel.hop_length
    items = []
    for entry in tqdm(entries, desc="encoding clips", leave=False):
        wav = torch.from_numpy(load_audio(entry["path"], mel.sample_rate)).float()
        for win in windows(wav, length, max_windows):
            win = win * (0.5 / win.abs().max().clamp(min=1e-8))  # peak 0.5, as the corpus crops
            z = encode_mel(vae, mel(win[None])[:, None])[0]
            # a text-only CLAP (diffusers AudioLDM folder): no audio embedding; crops train on their captions'
            emb = clap.encode_audio(win[None]).float()[0] if clap.has_audio else torch.zeros(clap.embedding_dim)
            for caption in entry["captions"]:
                items.append({"latents": z, "audio_emb": emb, "caption": caption, "id": entry["id"]})
    return items
