"""The demo's requests as plain functions over :class:`~tta.pipeline.TTAPipeline`: check the page's values, run
the pipeline, return the audio, its spectrogram and the settings (with the equivalent CLI line).

Every bad value raises :class:`~tta.errors.InputError` with a readable message (the page shows it); nothing
here imports Gradio.
"""

from __future__ import annotations

import math
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tta.demo.render import cli_line, spectrogram_image
from tta.errors import InputError

MAX_DEMO_DURATION_S = 30.0  # longest audio the page generates (the CLI goes to 60 s)
MAX_CANDIDATES = 8
MAX_TOP_K = 16
_RETRIEVAL_LOCK = threading.Lock()
EDIT_MODES = ("style", "inpaint", "superres")


@dataclass
class DemoResult:
    """One request's output: ``audio`` int16 [N] at ``sample_rate``, ``image`` uint8 [H, W, 3], the settings used
    and the CLI line that reproduces them."""

    sample_rate: int
    audio: np.ndarray
    image: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)
    cli: str = ""


def _number(value: Any, what: str, low: float, high: float, integer: bool = False) -> float | int:
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"{what} must be a number, got {value!r}") from err
    if not math.isfinite(number) or not low <= number <= high:
        raise InputError(f"{what} must be between {low:g} and {high:g}, got {value!r}")
    if integer:
        if number != int(number):
            raise InputError(f"{what} must be a whole number, got {value!r}")
        return int(number)
    return number


def _seed(value: Any) -> int:
    """A seed from the page: empty or negative means a new random seed."""
    if value is None or value == "" or (isinstance(value, (int, float)) and value < 0):
        return secrets.randbelow(2**31)
    return _number(value, "seed", 0, 2**62 - 1, integer=True)


def _prompt(value: Any, what: str = "prompt") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"the {what} is empty: describe the sound you want")
    return value.strip()


def _common(pipe, negative: Any, steps: Any, guidance: Any, seed: Any) -> dict[str, Any]:
    from tta.pipeline import MAX_STEPS

    return {
        "negative_prompt": negative.strip() if isinstance(negative, str) and negative.strip() else None,
        "num_inference_steps": _number(steps, "steps", 1, MAX_STEPS, integer=True),
        "guidance_scale": _number(guidance, "guidance", 0, 100),
        "seed": _seed(seed),
        "progress": False,
    }


def _report_conditioning(settings: dict[str, Any], out) -> None:
    """Add what the pipeline did on its own: the sounds a composed prompt was split into, the peak gain."""
    if out.sources is not None and len(out.sources[0]) > 1:
        settings["sounds"] = out.sources[0]
    if out.peak_gains is not None and out.peak_gains[0] < 1.0:
        settings["peak_gain"] = round(float(out.peak_gains[0]), 4)


def _result(pipe, wav: np.ndarray, settings: dict[str, Any], cli: str) -> DemoResult:
    pcm = (np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0) * 32767).round().astype(np.int16)
    return DemoResult(pipe.sample_rate, pcm, spectrogram_image(wav, pipe.sample_rate), settings, cli)


def run_generate(
    pipe,
    prompt: Any,
    negative: Any = None,
    duration: Any = 5.0,
    steps: Any = 20,
    guidance: Any = 2.5,
    seed: Any = None,
    candidates: Any = 1,
    max_duration_s: float = MAX_DEMO_DURATION_S,
    retrieval=None,
    top_k: Any = None,
) -> DemoResult:
    """Text to audio, as ``tta generate``; with ``retrieval`` (a :class:`~tta.retrieval.RetrievalIndex`), as
    ``tta generate --retrieval INDEX --top-k K`` (the settings list the clips retrieved)."""
    prompt = _prompt(prompt)
    duration = _number(duration, "duration (seconds)", 0.1, max_duration_s)
    n_cand = _number(candidates, "candidates", 1, MAX_CANDIDATES, integer=True)
    kw = _common(pipe, negative, steps, guidance, seed)
    if retrieval is not None:
        top_k = None if top_k in (None, "", 0) else _number(top_k, "top k", 1, MAX_TOP_K, integer=True)
    with _RETRIEVAL_LOCK:  # the index is pipeline state: set and used by one request at a time
        pipe.set_retrieval(retrieval, top_k)
        try:
            out = pipe(prompt, audio_length_in_s=duration, num_candidates=n_cand, **kw)
        finally:
            pipe.set_retrieval(None)
    options = {
        "negative": kw["negative_prompt"],
        "duration": duration,
        "steps": kw["num_inference_steps"],
        "guidance": kw["guidance_scale"],
        "seed": kw["seed"],
        "candidates": n_cand,
        "model": pipe.name_or_path,
    }
    if retrieval is not None:
        options.update(retrieval=retrieval.folder, top_k=top_k)
    settings = {"mode": "generate", "prompt": prompt, **options, "seed": out.seeds[0]}
    if out.retrieved is not None:
        settings["retrieved"] = [
            {"text": part["text"], "clips": [clip["id"] for clip in part["clips"]]} for part in out.retrieved[0]
        ]
    if out.clap_scores is not None:
        settings["clap_score"] = round(float(out.clap_scores[0]), 4)
    _report_conditioning(settings, out)
    return _result(pipe, out.audios[0], settings, cli_line(["tta", "generate", prompt], options))


def run_edit(
    pipe,
    mode: str,
    upload: Any,
    prompt: Any,
    negative: Any = None,
    steps: Any = 20,
    guidance: Any = 2.5,
    seed: Any = None,
    strength: Any = None,
    ranges: Any = None,
    cutoff_hz: Any = None,
    feather: Any = 0.05,
) -> DemoResult:
    """Edit an uploaded file, as ``tta edit MODE``.

    Args:
        mode: "style", "inpaint" or "superres".
        upload: the uploaded file's path.
        strength: in [0, 1]; default 0.6 for style transfer, 1 otherwise.
        ranges: inpainting time ranges as text, ``"1.0:2.5, 3:4"``.
        cutoff_hz: super-resolution cut-off; empty or 0 detects it from the input.
    """
    from pathlib import Path

    from tta.editing import EditRegion, parse_range

    if mode not in EDIT_MODES:
        raise InputError(f"unknown edit mode {mode!r}; one of {', '.join(EDIT_MODES)}")
    if not upload:
        raise InputError("upload an audio file to edit first")
    prompt = _prompt(prompt)
    strength = _number(
        0.6 if strength is None and mode == "style" else 1.0 if strength is None else strength, "strength", 0, 1
    )
    kw = _common(pipe, negative, steps, guidance, seed)
    options: dict[str, Any] = {"prompt": prompt, "strength": strength}
    if mode == "inpaint":
        parts = [p for p in str(ranges or "").replace(";", ",").split(",") if p.strip()]
        if not parts:
            raise InputError("give the time ranges to regenerate, e.g. 1.0:2.5, 3:4 (seconds)")
        spans = tuple(parse_range(p) for p in parts)
        feather = _number(feather, "feather (seconds)", 0, 1)
        out = pipe.edit(upload, prompt, strength=strength, region=EditRegion(ranges=spans), feather_s=feather, **kw)
        options.update(range=[f"{a:g}:{b:g}" for a, b in out.region.ranges], feather=feather)
    elif mode == "superres":
        cutoff = None if cutoff_hz in (None, "", 0) else _number(cutoff_hz, "cut-off (Hz)", 1, pipe.sample_rate / 2)
        out = pipe.super_resolve(upload, prompt, cutoff_hz=cutoff, strength=strength, **kw)
        options["cutoff_hz"] = out.region.above_hz
    else:
        out = pipe.edit(upload, prompt, strength=strength, **kw)
    options.update(
        negative=kw["negative_prompt"],
        steps=kw["num_inference_steps"],
        guidance=kw["guidance_scale"],
        seed=kw["seed"],
        model=pipe.name_or_path,
    )
    settings = {"mode": mode, "input": Path(upload).name, **options}
    _report_conditioning(settings, out)
    return _result(pipe, out.audios[0], settings, cli_line(["tta", "edit", mode, Path(upload).name], options))
