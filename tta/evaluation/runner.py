"""``evaluate``: the one entry point that ``tta eval`` and Python callers use.

Steps: 1. list the generated and reference clips and the prompts; 2. embed every clip with the backend (through
the cache); 3. FAD, FAD∞ and KAD on the pooled frames (and, with ``per_clip``, each generated clip's kernel
distance to the reference set); 4. Inception Score and, for clips paired by name, KL from the backend's
classifier; 5. CLAP score of the generated clips with their prompts; 6. paired metrics (mel distance, LSD, PSNR)
for clips paired by name; 7. the loudness spread of the generated clips (integrated LUFS and true peak). The
result is a plain dict (see :mod:`tta.evaluation.report`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from tta.errors import InputError
from tta.evaluation.backends import DEFAULT_BACKEND, EmbeddingBackend, load_backend
from tta.evaluation.backends.base import ClipFeatures
from tta.evaluation.cache import EmbeddingCache
from tta.evaluation.frechet import fad_inf, frechet_distance
from tta.evaluation.inputs import list_audio, read_prompts, sidecar_prompts
from tta.evaluation.kad import KAD_POOLS, kernel_audio_distance, per_clip_kernel_distance, resolve_bandwidth
from tta.evaluation.paired import paired_metrics
from tta.evaluation.scores import clap_cosines, clap_scores, inception_score, kl_divergence


def extract(
    backend: EmbeddingBackend, files: dict[str, Path], cache: EmbeddingCache, progress: bool = True, desc: str = ""
) -> dict[str, ClipFeatures]:
    """``{key: ClipFeatures}`` for every file, read from the cache or computed (and stored) by the backend."""
    from tqdm.auto import tqdm

    from tta.audio.io import load_audio

    out = {}
    for key, path in tqdm(files.items(), desc=desc, unit="clip", disable=not progress):
        feats = cache.get(path)
        if feats is None:
            feats = backend.features(load_audio(path, backend.sample_rate))
            cache.put(path, feats)
        out[key] = feats
    return out


def pair_keys(generated: dict[str, Path], reference: dict[str, Path], paired: bool | None) -> list[str]:
    """Generated clip keys that have a reference of the same name; ``paired=True`` requires all of them."""
    missing = [k for k in generated if k not in reference]
    if paired and missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise InputError(f"--paired: {len(missing)} generated clip(s) have no reference of the same name ({shown})")
    if paired is False or (paired is None and missing):
        return []
    return list(generated)


def collect_prompts(generated: dict[str, Path], prompts_file: str | os.PathLike | None) -> dict[str, dict]:
    if prompts_file is None:
        return sidecar_prompts(generated)
    prompts = read_prompts(prompts_file)
    missing = [k for k in generated if k not in prompts]
    if missing:
        raise InputError(f"--prompts {prompts_file} has no prompt for {len(missing)} clip(s), e.g. {missing[0]!r}")
    return {k: prompts[k] for k in generated}


def kad_rows(features: dict[str, ClipFeatures], pool: str) -> list[np.ndarray]:
    """Each clip's rows for KAD: its frames [T, D] (``pool="frames"``, kadtk's) or their mean [1, D] (``"clips"``)."""
    if pool not in KAD_POOLS:
        raise InputError(f"unknown KAD pooling {pool!r}; known: {', '.join(KAD_POOLS)}")
    return [f.frames if pool == "frames" else f.frames.mean(axis=0, keepdims=True) for f in features.values()]


def distances(gen_frames: np.ndarray, ref_frames: np.ndarray, fad_inf_steps: int, kad_bandwidth=None, kad_sets=None):
    """FAD, FAD∞ and KAD of pooled frames [N, D] against [M, D] -> (metrics, notes, KAD bandwidth); ``kad_sets``:
    other (generated, reference) rows for KAD (e.g. clip means)."""
    metrics: dict[str, float] = {"fad": frechet_distance(gen_frames, ref_frames)}
    notes: list[str] = []
    if len(gen_frames) >= 4:
        inf = fad_inf(gen_frames, ref_frames, steps=fad_inf_steps)
        metrics.update({"fad_inf": inf.score, "fad_inf_r2": inf.r2})
    if len(gen_frames) <= gen_frames.shape[1] or len(ref_frames) <= ref_frames.shape[1]:
        notes.append(
            f"fewer embeddings ({len(gen_frames)} generated, {len(ref_frames)} reference) than dimensions "
            f"({gen_frames.shape[1]}): covariances are singular and FAD depends on the set sizes; "
            "compare runs of equal sizes, or FAD∞ or KAD"
        )
    kad_gen, kad_ref = kad_sets if kad_sets is not None else (gen_frames, ref_frames)
    bandwidth = resolve_bandwidth(kad_gen, kad_ref, kad_bandwidth)
    metrics["kad"] = kernel_audio_distance(kad_gen, kad_ref, bandwidth=bandwidth)
    return metrics, notes, bandwidth


def loudness_spread(files: dict[str, Path]) -> tuple[dict, dict[str, tuple[float, float]]]:
    """Summary (min / median / max LUFS and dBTP) and per-clip (LUFS, true peak) of the files, read at 16 kHz."""
    from tta.audio.io import SAMPLE_RATE, load_audio
    from tta.audio.loudness import loudness_summary, measure_loudness, true_peak

    per = {}
    for key, path in files.items():
        wav = load_audio(path, SAMPLE_RATE)
        per[key] = (float(measure_loudness(wav, SAMPLE_RATE)[0]), float(true_peak(wav)[0]))
    summary = loudness_summary([v[0] for v in per.values()], [v[1] for v in per.values()])
    return summary, per


def classifier_metrics(model: EmbeddingBackend, gen: dict, ref: dict, keys: list[str]) -> tuple[dict, list[str]]:
    """Inception Score of the generated clips and, for the clips paired by name (``keys``), KL."""
    if model.classifier is None:
        return {}, [f"backend {model.name} has no classifier: no KL or Inception Score"]
    metrics: dict[str, float] = {}
    gen_logits = np.stack([f.logits for f in gen.values()])
    # audioldm_eval's 10 splits, but at least 10 clips per split (a one-clip split always scores 1)
    splits = max(1, min(10, len(gen_logits) // 10))
    metrics["inception_score"], metrics["inception_score_std"] = inception_score(gen_logits, splits=splits)
    metrics["inception_score_splits"] = splits
    if keys:
        ref_logits = np.stack([ref[k].logits for k in keys])
        pair_logits = np.stack([gen[k].logits for k in keys])
        metrics["kl_softmax"] = kl_divergence(pair_logits, ref_logits, "softmax")
        metrics["kl_sigmoid"] = kl_divergence(pair_logits, ref_logits, "sigmoid")
    return metrics, []


def clap_score(scorer, audio: dict, clip_prompts: dict, metrics: dict) -> tuple[dict[str, float], dict[str, float]]:
    """CLAP score of the clips that have a prompt (added to ``metrics``) -> (cosine per clip, mean per class)."""
    scored = [k for k in audio if k in clip_prompts]
    texts = scorer.encode_text([clip_prompts[k]["prompt"] for k in scored])
    cos = clap_cosines(texts, np.stack([audio[k].frames[0] for k in scored]))
    metrics.update(clap_scores(cos))
    groups: dict[str, list[float]] = {}
    for k, c in zip(scored, cos):
        groups.setdefault(clip_prompts[k].get("label", clip_prompts[k]["prompt"]), []).append(float(c))
    return {k: float(c) for k, c in zip(scored, cos)}, {g: float(np.mean(v)) for g, v in sorted(groups.items())}


def evaluate(
    generated: str | os.PathLike,
    reference: str | os.PathLike,
    prompts: str | os.PathLike | None = None,
    backend: str | EmbeddingBackend = DEFAULT_BACKEND,
    backend_weights: str | os.PathLike | None = None,
    clap: str | os.PathLike | EmbeddingBackend | None = None,
    paired: bool | None = None,
    device: str = "cpu",
    cache: bool = True,
    cache_root: str | os.PathLike | None = None,
    fad_inf_steps: int = 25,
    progress: bool = True,
    per_clip: bool = False,
    kad_bandwidth: float | str | None = None,
    kad_pool: str = "frames",
    loudness: bool = True,
) -> dict:
    """Evaluate a folder of generated clips against a folder of reference clips.

    Args:
        generated, reference: folders of audio files (at least 2 each).
        prompts: a prompts file (see :mod:`tta.evaluation.inputs`); default: ``tta generate`` sidecars.
        backend, backend_weights: a name of :data:`tta.evaluation.backends.BACKENDS` (or a built backend) and its
            weight file or folder.
        clap: the CLAP folder (or CLAP backend) for the CLAP score when the backend is not a CLAP (default: ours).
        paired: True: every generated clip must have a reference of the same name (paired metrics and KL);
            None: paired metrics when all have one; False: none.
        per_clip: add each clip's kernel distance to the reference set (``kad_distance``) to its row of ``clips``.
        kad_bandwidth: None (kadtk's: median pairwise distance of the generated frames), "reference", or a number.
        kad_pool: ``"frames"`` (kadtk's) or ``"clips"`` (one mean embedding per clip; :data:`tta.evaluation.kad.KAD_POOLS`).
        loudness: measure the generated clips' integrated loudness and true peak (``loudness`` in the result).

    Returns ``metrics`` (name -> float), ``counts``, ``per_class_clap_score``, ``clips`` (per-clip rows),
    ``loudness`` (summary), ``notes``, ``settings``.
    """
    start = time.perf_counter()  # 1. Inputs, checked before any model loads.
    gen_files, ref_files = list_audio(generated, "--generated"), list_audio(reference, "--reference")
    keys = pair_keys(gen_files, ref_files, paired)
    clip_prompts = collect_prompts(gen_files, prompts)
    if kad_pool not in KAD_POOLS:
        raise InputError(f"unknown KAD pooling {kad_pool!r}; known: {', '.join(KAD_POOLS)}")

    # 2. Embeddings.
    model = load_backend(backend, backend_weights, device) if isinstance(backend, str) else backend
    store = EmbeddingCache(model.version(), cache_root, enabled=cache)
    gen, ref = (extract(model, files, store, progress, what) for files, what in ((gen_files, "generated"), (ref_files, "reference")))  # fmt: skip
    gen_frames, ref_frames = (np.concatenate([f.frames for f in e.values()]) for e in (gen, ref))

    # 3. FAD, FAD-inf, KAD.
    gen_kad, ref_kad = kad_rows(gen, kad_pool), kad_rows(ref, kad_pool)
    kad_sets = (np.concatenate(gen_kad), np.concatenate(ref_kad))  # what KAD compares: frames or clip means
    metrics, notes, bandwidth = distances(gen_frames, ref_frames, fad_inf_steps, kad_bandwidth, kad_sets)

    # 4. Classifier metrics.
    classified, classifier_notes = classifier_metrics(model, gen, ref, keys)
    metrics, notes = {**metrics, **classified}, notes + classifier_notes

    # 5. CLAP score.
    clips = [{"file": gen_files[k].name, **clip_prompts.get(k, {})} for k in gen_files]
    for row, score in zip(clips, per_clip_kernel_distance(gen_kad, kad_sets[1], bandwidth) if per_clip else []):
        row["kad_distance"] = score
    per_class = prompt_scores(model, clap, gen, gen_files, clip_prompts, clips, metrics, notes, device, cache_root, cache, progress)  # fmt: skip

    # 6. Paired metrics.
    metrics.update(paired_rows(keys, gen_files, ref_files, clips) if keys else {})

    # 7. Loudness.
    spread = clip_loudness(gen_files, clips) if loudness else {}
    options = {"kad_bandwidth": bandwidth, "kad_pool": kad_pool, "per_clip": per_clip, "prompts": prompts}
    return {
        "metrics": metrics,
        "counts": _counts(gen_files, ref_files, gen_frames, ref_frames, keys, clips),
        "per_class_clap_score": per_class,
        "clips": clips,
        "loudness": spread,
        "notes": notes,
        "settings": _settings(generated, reference, model, store, cache, options, start),
    }


def clip_loudness(gen_files: dict, clips: list[dict]) -> dict:
    """Step 7 of :func:`evaluate`: each clip's loudness and true peak into its row; the folder's spread."""
    index = {k: i for i, k in enumerate(gen_files)}
    spread, per_loudness = loudness_spread(gen_files)
    for k, (lufs, peak) in per_loudness.items():
        clips[index[k]].update(lufs=lufs, true_peak=peak)
    return spread


def _counts(gen_files, ref_files, gen_frames, ref_frames, keys, clips) -> dict[str, int]:
    return {
        "generated": len(gen_files),
        "reference": len(ref_files),
        "generated_frames": int(len(gen_frames)),
        "reference_frames": int(len(ref_frames)),
        "paired": len(keys),
        "with_prompt": sum(1 for c in clips if "prompt" in c),
    }


def _settings(generated, reference, model, store, cache: bool, options: dict, start: float) -> dict:
    prompts = options["prompts"]
    return {
        "generated": str(generated),
        "reference": str(reference),
        "backend": model.name,
        "backend_version": model.version(),
        "classifier": model.classifier,
        **options,
        "prompts": str(prompts) if prompts is not None else "sidecars",
        "cache": {"enabled": cache, "hits": store.hits, "misses": store.misses},
        "seconds": round(time.perf_counter() - start, 3),
    }


def prompt_scores(
    model, clap, gen, gen_files, clip_prompts, clips, metrics, notes, device, cache_root, cache, progress
):
    """Step 5 of :func:`evaluate`: the CLAP score of the clips that have a prompt (with ``model`` when it is a CLAP,
    else ``clap``) into ``metrics``, each clip's cosine into its row of ``clips``; returns the per-class scores."""
    if not clip_prompts:
        notes.append("no prompts (no --prompts file, no sidecars): no CLAP score")
        return {}
    index = {k: i for i, k in enumerate(gen_files)}
    scorer = model if hasattr(model, "encode_text") else _clap_backend(clap, device)
    if scorer is model:
        audio = gen
    else:
        audio = extract(scorer, gen_files, EmbeddingCache(scorer.version(), cache_root, cache), progress, "CLAP")
    cosines, per_class = clap_score(scorer, audio, clip_prompts, metrics)
    for k, c in cosines.items():
        clips[index[k]]["clap_cosine"] = c
    if len(cosines) < len(gen_files):
        notes.append(f"CLAP score over the {len(cosines)} of {len(gen_files)} clips that have a prompt")
    return per_class


def paired_rows(keys, gen_files, ref_files, clips) -> dict[str, float]:
    """Step 6 of :func:`evaluate`: each same-named pair's paired metrics into its row of ``clips``; their means."""
    from tta.audio.io import load_audio

    index = {k: i for i, k in enumerate(gen_files)}
    rows = []
    for k in keys:
        row = paired_metrics(load_audio(gen_files[k]), load_audio(ref_files[k]))
        clips[index[k]].update(row)
        rows.append(row)
    return {name: float(np.mean([r[name] for r in rows])) for name in rows[0]}


def _clap_backend(clap, device: str):
    from tta.evaluation.backends.clap import ClapBackend

    return clap if isinstance(clap, EmbeddingBackend) else ClapBackend(clap, device=device)
