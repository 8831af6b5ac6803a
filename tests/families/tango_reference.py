"""Tango's published inference maths (declare-lab/tango ``models.py``: ``AudioDiffusion.encode_text``,
``encode_text_classifier_free``, ``inference``; ``tango.py``: ``vae.decode_first_stage``, ``decode_to_waveform``),
rewritten over diffusers / transformers modules as the reference tta's Tango family is tested against.

It encodes a batch of prompts together (padded to the longest, boolean mask), the unconditional branch as the
empty text padded to that length, and steps the given scheduler from the given latents."""

from __future__ import annotations

import torch


@torch.no_grad()
def tango_reference(t5, tokenizer, unet, vae, vocoder, scheduler, prompts, latents, steps, guidance):
    """Waveforms [B, N] for ``prompts`` from starting noise ``latents`` [B, C, H, W]."""
    cfg = guidance > 1.0
    batch = tokenizer(
        prompts, max_length=tokenizer.model_max_length, padding=True, truncation=True, return_tensors="pt"
    )
    embeds = t5(input_ids=batch.input_ids, attention_mask=batch.attention_mask)[0]
    mask = batch.attention_mask
    if cfg:
        empty = tokenizer(
            [""] * len(prompts), max_length=embeds.shape[1], padding="max_length", truncation=True, return_tensors="pt"
        )
        uncond = t5(input_ids=empty.input_ids, attention_mask=empty.attention_mask)[0]
        embeds, mask = torch.cat([uncond, embeds]), torch.cat([empty.attention_mask, mask])
    mask = mask == 1
    scheduler.set_timesteps(steps)
    latents = latents * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = torch.cat([latents] * 2) if cfg else latents
        x = scheduler.scale_model_input(x, t)
        eps = unet(x, t, encoder_hidden_states=embeds, encoder_attention_mask=mask).sample
        if cfg:
            eps_u, eps_c = eps.chunk(2)
            eps = eps_u + guidance * (eps_c - eps_u)
        latents = scheduler.step(eps, t, latents).prev_sample
    mel = vae.decode(latents / vae.config.scaling_factor).sample  # [B, 1, T, n_mels]
    return vocoder(mel[:, 0]).float()
