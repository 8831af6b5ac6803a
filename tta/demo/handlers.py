"""The demo's requests as plain functions over :class:`~tta.pipelines.TTAPipeline`: turn the page's values into
the pipeline's arguments, run it, and return the audio, its spectrogram, the pipeline's own settings and the CLI
line that reproduces them.

The limits are the core's (:mod:`tta.pipelines.checks`): the pipeline checks every value and its
:class:`~tta.errors.InputError` is what the page shows. Each request passes its own retrieval index to the
pipeline, so requests run concurrently without a lock. Nothing here imports Gradio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tta.audio.melplot import spectrogram_image
from tta.cli.common import command_line
from tta.errors import InputError
from tta.pipelines.checks import random_seed
from tta.sampling.shapes import MAX_DURATION_S

EDIT_MODES = ("style", "inpaint", "superres")


@dataclass
class DemoResult:
    """One request's output: ``audio`` int16 [N] at ``sample_rate``, ``image`` uint8 [H, W, 3], the settings used
    (the pipeline's :meth:`~tta.pipelines.TTAPipelineOutput.settings_for`) and the CLI line that reproduces them."""

    sample_rate: int
    audio: np.ndarray
    image: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)
    cli: str = ""


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _seed(value: Any) -> Any:
    """A seed from the page: empty or negative means a new random seed (the pipeline checks the rest)."""
    if _blank(value) or (isinstance(value, (int, float)) and value < 0):
        return random_seed()
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _common(negative: Any, steps: Any, guidance: Any, seed: Any) -> dict[str, Any]:
    return {
        "negative_prompt": None if _blank(negative) else str(negative).strip(),
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "seed": _seed(seed),
        "progress": False,
    }


def _prompt(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _result(pipe, out, command: list[str], extra: dict[str, Any] | None = None) -> DemoResult:
    settings = {**(extra or {}), **out.settings_for(0)}
    if "retrieved" in settings:  # each clip by id and score: Gradio would fetch a dict with a "path" as a file
        settings["retrieved"] = [
            {"text": part["text"], "clips": [{"id": c["id"], "score": c["score"]} for c in part["clips"]]}
            for part in settings["retrieved"]
        ]
    wav = out.audios[0]
    pcm = (np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0) * 32767).round().astype(np.int16)
    image = spectrogram_image(wav, pipe.sample_rate)
    return DemoResult(pipe.sample_rate, pcm, image, settings, command_line(settings, command))


def run_generate(
    pipe,
    prompt: Any,
    negative: Any = None,
    duration: Any = 5.0,
    steps: Any = 20,
    guidance: Any = 2.5,
    seed: Any = None,
    candidates: Any = 1,
    max_duration_s: float = MAX_DURATION_S,
    retrieval=None,
    top_k: Any = None,
) -> DemoResult:
    """Text to audio, as ``tta generate``; with ``retrieval`` (a :class:`~tta.retrieval.RetrievalIndex`), as
    ``tta generate --retrieval INDEX --top-k K`` (the settings list the clips retrieved). ``max_duration_s``
    is the page's own cap (a server may serve shorter clips than the CLI makes)."""
    from tta.pipelines.checks import check_number

    duration = check_number(duration, "duration (seconds)", 0.0, max_duration_s)
    top_k = None if retrieval is None or top_k in (None, "", 0) else top_k
    out = pipe(
        _prompt(prompt),
        audio_length_in_s=duration,
        num_candidates=candidates,
        retrieval=retrieval,
        top_k=top_k,
        **_common(negative, steps, guidance, seed),
    )
    return _result(pipe, out, ["tta", "generate", out.prompts[0]], {"mode": "generate"})


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
    from tta.editing import EditRegion, parse_range

    if mode not in EDIT_MODES:
        raise InputError(f"unknown edit mode {mode!r}; one of {', '.join(EDIT_MODES)}")
    if not upload:
        raise InputError("upload an audio file to edit first")
    strength = (0.6 if mode == "style" else 1.0) if _blank(strength) else strength
    kw = {"strength": strength, **_common(negative, steps, guidance, seed)}
    prompt = _prompt(prompt)
    if mode == "inpaint":
        parts = [p for p in str(ranges or "").replace(";", ",").split(",") if p.strip()]
        if not parts:
            raise InputError("give the time ranges to regenerate, e.g. 1.0:2.5, 3:4 (seconds)")
        region = EditRegion(ranges=tuple(parse_range(p) for p in parts))
        out = pipe.edit(upload, prompt, region=region, feather_s=feather, **kw)
    elif mode == "superres":
        cutoff = None if cutoff_hz in (None, "", 0) else cutoff_hz
        out = pipe.super_resolve(upload, prompt, cutoff_hz=cutoff, **kw)
    else:
        out = pipe.edit(upload, prompt, **kw)
    name = Path(upload).name
    return _result(pipe, out, ["tta", "edit", mode, name, "--prompt", out.prompts[0]], {"input": name})
