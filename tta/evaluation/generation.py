"""How well a text-to-audio model does what it is asked: text alignment and realism of its generations.

*Alignment.* One prompt per corpus class, written for this test (:data:`tta.evaluation.clap_zero_shot.PARAPHRASES`,
checked by a test to differ from every training caption), and two-source prompts (:data:`TWO_SOURCE_PROMPTS`);
the CLAP ranks all classes (prompts ``class_prompt(c)``, as its zero-shot test) for each generated clip. A
single-source clip is a hit when its class comes first; a two-source clip when both classes are in the top 5.

*Realism.* FAD (our CLAP audio tower's embeddings, as ``tta eval``'s default backend) between the single-source
generations and the real clips of a corpus split, beside a floor (that split against real training clips) and a
baseline (noise shaped like the corpus's average log-mel, through the model's own vocoder).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from tta.data.prompts import TWO_SOURCE_PROMPTS


def single_source_prompts(classes: Sequence[str]) -> list[tuple[str, str]]:
    """(prompt, class) for each class: the first of our own descriptions of it."""
    from tta.data.prompts import PARAPHRASES

    return [(PARAPHRASES[c][0], c) for c in classes if c in PARAPHRASES]


@torch.no_grad()
def class_ranks(clap, audio: Sequence, classes: Sequence[str]) -> np.ndarray:
    """[N, C]: for each clip, the class indices ordered from the judge's best match down.

    ``clap`` is a CLAP (zero-shot against ``class_prompt(c)``) or any judge with a ``rank_classes(audio,
    classes)`` method, such as the aisfx backend with its linear probe (``--judge aisfx``)."""
    if hasattr(clap, "rank_classes"):
        return clap.rank_classes(audio, classes)
    from tta.data.captions import class_prompt
    from tta.evaluation.clap_zero_shot import class_text_embeddings, embed_clips

    emb = embed_clips(clap, [torch.as_tensor(np.asarray(a, np.float32)) for a in audio])
    text = class_text_embeddings(clap, list(classes), [class_prompt])
    return (emb @ text.T).argsort(dim=1, descending=True).numpy()


def alignment(clap, single, singles_audio, pairs, pairs_audio, classes: Sequence[str]) -> dict:
    """Alignment metrics (see the module docstring) from generated audio.

    Args:
        single: (prompt, class) per single-source clip; ``singles_audio`` the clips.
        pairs: (prompt, class a, class b) per two-source clip; ``pairs_audio`` the clips.
    """
    index = {c: i for i, c in enumerate(classes)}
    out: dict = {}
    if single:
        ranks = class_ranks(clap, singles_audio, classes)
        hits = [int(r[0] == index[c]) for r, (_, c) in zip(ranks, single)]
        top5 = [int(index[c] in r[:5]) for r, (_, c) in zip(ranks, single)]
        per_class = defaultdict(list)
        for h, (_, c) in zip(hits, single):
            per_class[c].append(h)
        out.update(
            single_top1=float(np.mean(hits)),
            single_top5=float(np.mean(top5)),
            single_clips=len(hits),
            per_class_top1={c: float(np.mean(v)) for c, v in sorted(per_class.items())},
            single_predictions=[{"prompt": p, "class": c, "top1": classes[r[0]]} for r, (p, c) in zip(ranks, single)],
        )
    if pairs:
        ranks = class_ranks(clap, pairs_audio, classes)
        both = [int(index[a] in r[:5] and index[b] in r[:5]) for r, (_, a, b) in zip(ranks, pairs)]
        out.update(
            pair_both_top5=float(np.mean(both)),
            pair_clips=len(both),
            pair_predictions=[
                {"prompt": p, "classes": [a, b], "top5": [classes[i] for i in r[:5]], "hit": bool(h)}
                for r, (p, a, b), h in zip(ranks, pairs, both)
            ],
        )
    return out


def noise_baseline(vocoder, mels: Sequence[torch.Tensor], count: int, frames: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` clips of ``frames`` mel frames: Gaussian noise with the per-bin mean and std of the log-mels in
    ``mels`` (each [T, n_mels]), through ``vocoder``: what sound with the corpus's average colour and no
    structure gives."""
    stacked = torch.cat([m.reshape(-1, m.shape[-1]) for m in mels]).double()
    mean, std = stacked.mean(0), stacked.std(0)
    g = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for _ in range(count):
            mel = mean + std * torch.randn(frames, mean.numel(), generator=g, dtype=torch.float64)
            out.append(vocoder(mel.float()[None].to(vocoder.dtype)).float()[0].numpy())
    return out


def real_clip_alignment(clap, items: Sequence[dict], classes: Sequence[str]) -> float:
    """The single-source top-1 of real recordings (``items`` from ``load_split``, single-label ones of a known
    class): the ceiling the judging CLAP puts on generated clips under the same protocol."""
    return real_clip_topk(clap, items, classes)[0]


def real_clip_topk(judge, items: Sequence[dict], classes: Sequence[str]) -> tuple[float, float]:
    """(top-1, top-5) of real single-label recordings under ``judge`` (see :func:`real_clip_alignment`)."""
    index = {c: i for i, c in enumerate(classes)}
    single = [(it["audio"], it["labels"][0]) for it in items if len(it["labels"]) == 1 and it["labels"][0] in index]
    if not single:
        return float("nan"), float("nan")
    ranks = class_ranks(judge, [a for a, _ in single], classes)
    top1 = float(np.mean([r[0] == index[c] for r, (_, c) in zip(ranks, single)]))
    return top1, float(np.mean([index[c] in r[:5] for r, (_, c) in zip(ranks, single)]))


def realism(clap, generated: Sequence, reference: Sequence, floor_reference: Sequence, baseline: Sequence) -> dict:
    """FAD of ``generated``, of ``baseline`` and of ``floor_reference`` (real clips of another split), each
    against ``reference`` (real clips), in the CLAP audio tower's embedding space."""
    from tta.evaluation.clap_zero_shot import embed_clips
    from tta.evaluation.frechet import frechet_distance

    def emb(clips):
        return embed_clips(clap, [torch.as_tensor(np.asarray(a, np.float32)) for a in clips]).numpy()

    ref = emb(reference)
    return {
        "fad": frechet_distance(emb(generated), ref),
        "fad_floor_real_vs_real": frechet_distance(emb(floor_reference), ref),
        "fad_baseline_noise": frechet_distance(emb(baseline), ref),
    }


def generate(
    pipe,
    prompts: Sequence[str],
    seconds: float,
    steps: int,
    guidance: float,
    seed: int,
    batch: int = 4,
    num_candidates: int = 1,
    compose: bool | None = None,
    **kwargs,
):
    """Audio [N] arrays for ``prompts`` (seeds ``seed + i``), and the seconds it took per clip. With
    ``num_candidates`` > 1 the pipeline keeps the best of that many candidates by CLAP score; ``compose`` and
    other keyword arguments (``compose_mode``, ``mix_gain_db``) as in the pipeline (None: the model's own choice)."""
    audio: list[np.ndarray] = []
    start = time.perf_counter()
    for first in range(0, len(prompts), batch):
        chunk = list(prompts[first : first + batch])
        result = pipe(
            chunk,
            audio_length_in_s=seconds,
            num_inference_steps=steps,
            guidance_scale=guidance,
            seed=[(seed + first + i) * num_candidates + k for i in range(len(chunk)) for k in range(num_candidates)],
            num_candidates=num_candidates,
            progress=False,
            compose=compose,
            **kwargs,
        )
        audio.extend(np.asarray(a, np.float32) for a in result.audios)
    return audio, (time.perf_counter() - start) / max(1, len(prompts))


def evaluate_text_to_audio(
    pipe,
    corpus,
    split: str = "test",
    seconds: float = 5.0,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
    floor_clips: int = 400,
    clap=None,
    pairs: Sequence[tuple[str, str, str]] = TWO_SOURCE_PROMPTS,
    num_candidates: int = 1,
) -> dict:
    """Alignment and realism of ``pipe``'s generations (module docstring) against a corpus split.

    Args:
        pipe: a :class:`tta.pipelines.TTAPipeline`.
        corpus: corpus root (``manifest.jsonl``).
        split: the real clips FAD compares with.
        seconds, steps, guidance, seed: generation settings (steps and guidance default to the pipeline's).
        floor_clips: training clips drawn (seeded) for the real-vs-real floor.
        clap: the CLAP that judges (default the shipped one, ``load_clap()``).
        num_candidates: CLAP re-ranking in the pipeline (best of N). The pipeline ranks with its own CLAP, which
            for the shipped model is the judge too, so report such figures apart from plain generation.
    """
    from tta.data.captions import CLASSES
    from tta.evaluation.clap_zero_shot import load_split
    from tta.models.clap import load_clap

    steps = pipe.default_steps if steps is None else steps
    guidance = pipe.default_guidance if guidance is None else guidance
    clap = load_clap() if clap is None else clap
    classes = list(CLASSES)
    single = single_source_prompts(classes)
    kw = dict(num_candidates=num_candidates)
    single_audio, per_clip_s = generate(pipe, [p for p, _ in single], seconds, steps, guidance, seed, **kw)
    pair_audio, _ = generate(pipe, [p for p, _, _ in pairs], seconds, steps, guidance, seed + 10_000, **kw)
    out = {"settings": {"seconds": seconds, "steps": steps, "guidance": guidance, "seed": seed, "split": split}}
    out["settings"]["num_candidates"] = num_candidates
    out["seconds_per_clip"] = per_clip_s
    out.update(alignment(clap, single, single_audio, list(pairs), pair_audio, classes))
    items = load_split(corpus, split, max_seconds=10.0)
    out["real_single_top1"] = real_clip_alignment(clap, items, classes)
    reference = [it["audio"].numpy() for it in items]
    floor = [it["audio"].numpy() for it in load_split(corpus, "train", max_seconds=10.0, max_items=floor_clips)]
    mel = pipe.mel_frontend()
    with torch.no_grad():
        mels = [mel(torch.as_tensor(r)) for r in reference if r.size > mel.n_fft]
    frames = int(round(seconds * pipe.sample_rate)) // pipe.hop_length
    baseline = noise_baseline(pipe.vocoder, mels, len(single_audio), frames, seed)
    out.update(realism(clap, single_audio, reference, floor, baseline))
    out["reference_clips"], out["floor_clips"] = len(reference), len(floor)
    return out
