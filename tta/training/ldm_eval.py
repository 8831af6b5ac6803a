"""What the latent diffusion stage measures while it trains: the held-out denoising loss, how much the condition
lowers it, and whether generations of a few prompts sound like their class to the CLAP."""

from __future__ import annotations

import re

import torch


def prompt_class(prompt: str, classes: list[str]) -> str | None:
    """The one corpus class whose name occurs in the prompt as whole words (``"rain falling"`` -> rain), else
    None (no class, or several: a two-source prompt)."""
    text = prompt.lower()
    found = [c for c in classes if re.search(rf"\b{re.escape(c.lower())}\b", text)]
    return found[0] if len(found) == 1 else None


@torch.no_grad()
def prompt_class_hits(clap, audio: torch.Tensor, prompts: list[str], classes: list[str]) -> list[bool]:
    """For the prompts that name one of ``classes``, whether the CLAP ranks that class first for the matching
    row of ``audio`` [len(prompts), N] (classes prompted as ``the sound of {class}``)."""
    from tta.data.captions import class_prompt
    from tta.evaluation.clap_zero_shot import class_text_embeddings, embed_clips

    wanted = [prompt_class(p, classes) for p in prompts]
    keep = [i for i, c in enumerate(wanted) if c is not None]
    if not keep:
        return []
    emb = embed_clips(clap, [audio[i] for i in keep])
    text = class_text_embeddings(clap, classes, [class_prompt]).to(emb.device)
    best = (emb @ text.T).argmax(dim=1).tolist()
    return [classes[b] == wanted[i] for b, i in zip(best, keep)]


@torch.no_grad()
def denoising_metrics(loss, unet, examples, null: torch.Tensor, timesteps: list[int], generator) -> dict[str, float]:
    """Held-out denoising loss at fixed ``timesteps`` and noise (from ``generator``), conditioned on each clip's
    CLAP audio embedding: ``val_mse``; and per timestep how much the condition lowers it against the empty
    text's ``null`` [1, D] (``cond_gain_t{t}``: about 0 where the UNet ignores its condition).

    ``examples`` yields ``(z0 [1, C, H, W], cond [1, D])``; ``loss`` is a :class:`~tta.training.diffusion_loss.
    DiffusionLoss`."""
    losses: list[float] = []
    gains: dict[int, list[float]] = {t: [] for t in timesteps}
    for z0, cond in examples:
        for t in timesteps:
            noise = torch.randn(z0.shape, generator=generator).to(z0.device)
            tt = torch.full((1,), t, device=z0.device, dtype=torch.long)
            mse = float(loss(unet, z0, cond, noise, tt, reduce=False)[0])
            losses.append(mse)
            gains[t].append(float(loss(unet, z0, null, noise, tt, reduce=False)[0]) - mse)
    if not losses:
        return {}
    out = {"val_mse": sum(losses) / len(losses)}
    out.update({f"cond_gain_t{t}": sum(v) / len(v) for t, v in gains.items()})
    return out


@torch.no_grad()
def generate_prompts(pipe, prompts: list[str], seconds: float, steps: int, guidance: float, seed: int, index=None):
    """Waveforms [len(prompts), N] of ``prompts`` from ``pipe`` (the UNet being trained and the frozen parts)."""
    kwargs = {"retrieval": index} if index is not None else {}
    result = pipe(
        prompts,
        audio_length_in_s=seconds,
        num_inference_steps=steps,
        guidance_scale=guidance,
        seed=seed,
        progress=False,
        **kwargs,
    )
    return torch.as_tensor(result.audios)
