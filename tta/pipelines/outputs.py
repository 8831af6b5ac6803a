"""What the pipelines return: the audio, and ``settings``, exactly what ran.

``settings`` is the one source of every record of a generation: ``tta generate``'s and ``tta edit``'s JSON
sidecars are :meth:`TTAPipelineOutput.settings_for` of a waveform plus the file's own fields, and the demo's
settings panel shows the same dict. Its keys are the sidecar's (``steps``, ``guidance``, ``duration``...);
:func:`call_arguments` maps them back to the pipeline's arguments, so a sidecar re-runs its call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tta.editing.regions import EditRegion

# settings key -> the TTAPipeline.__call__ argument it came from
CALL_KEYS = {
    "negative_prompt": "negative_prompt",
    "duration": "audio_length_in_s",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "sampler": "sampler",
    "candidates": "num_candidates",
    "compose": "compose",
    "compose_mode": "compose_mode",
    "mix_gain_db": "mix_gain_db",
    "peak_limit": "peak_limit",
    "loudness": "loudness",
    "prior": "use_prior",
    "top_k": "top_k",
}
PER_WAVEFORM = ("seeds", "clap_scores", "peak_gains", "sources", "retrieved", "loudness_measured", "loudness_gain_db")


@dataclass
class TTAPipelineOutput:
    """What :meth:`TTAPipeline.__call__` returns.

    Attributes:
        audios: waveforms, numpy float32 [B, N] (``output_type="np"``) or a torch tensor ("pt"), with
            ``B = len(prompts) * num_waveforms_per_prompt``, prompt-major.
        sample_rate: Hz (16000).
        seeds: the seed of each waveform (regenerate one alone with ``seed=seeds[i]``); None when the caller
            gave ``latents`` or ``generator``.
        clap_scores: CLAP text-audio cosine similarity of each kept waveform when ``num_candidates > 1``.
        peak_gains: the gain :func:`tta.audio.limiter.limit_peaks` applied to each waveform, numpy [B] (1.0: its
            peak was already under ``peak_limit``; below 1: it was scaled down to keep inside full scale).
        sources: for each waveform, the texts it was conditioned on: ``[prompt]``, or the prompt's sound parts
            when it was composed (``compose``).
        retrieved: with a retrieval index (``retrieval=``), for each waveform and each of its ``sources``, the
            index entries it was conditioned on: ``{"text", "clips": [{"id", "path", "captions", "score"}, ...]}``,
            nearest first; None without one.
        loudness_measured: with ``loudness=``, each waveform's integrated loudness (LUFS) before normalising.
        loudness_gain_db: with ``loudness=``, the gain applied to each waveform (dB).
        settings: what ran, for the whole call (checked values, defaults filled in, the model's identity): see
            :meth:`settings_for` for one waveform's record.
        prompts: the prompt of each waveform.
    """

    audios: Any
    sample_rate: int
    seeds: list[int] | None = None
    clap_scores: np.ndarray | None = None
    peak_gains: np.ndarray | None = None
    sources: list[list[str]] | None = None
    retrieved: list[list[dict]] | None = None
    loudness_measured: np.ndarray | None = None
    loudness_gain_db: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    prompts: list[str] | None = None

    def settings_for(self, i: int) -> dict[str, Any]:
        """Waveform ``i``'s record: the call's :attr:`settings` with its own prompt, seed, sources, retrieved
        clips, peak gain, CLAP score and loudness (keys absent when the call made none)."""
        out = dict(self.settings)
        if self.prompts is not None:
            out["prompt"] = self.prompts[i]
        names = {"seeds": "seed", "clap_scores": "clap_score", "peak_gains": "peak_gain"}
        for attr in PER_WAVEFORM:
            values = getattr(self, attr)
            if values is not None:
                value = values[i]
                out[names.get(attr, attr)] = float(value) if isinstance(value, np.floating) else value
        return out


@dataclass
class EditOutput(TTAPipelineOutput):
    """What :meth:`TTAPipeline.edit` returns: the audio as for generation, plus

    Attributes:
        mels: the final log-mels [B, T, n_mels] (numpy or torch like ``audios``), T = ceil(N / hop), as decoded
            (before ``peak_limit`` scales the waveform).
        region: the :class:`tta.editing.EditRegion` regenerated (None for style transfer), ranges clipped to the
            input and the cut-off resolved.
    """

    mels: Any = None
    region: EditRegion | None = None


def call_arguments(settings: dict[str, Any]) -> dict[str, Any]:
    """The :meth:`TTAPipeline.__call__` keyword arguments a settings dict (or a sidecar) records; keys it lacks
    are left out (the pipeline's defaults apply)."""
    return {arg: settings[key] for key, arg in CALL_KEYS.items() if key in settings}
