"""The pipeline core: the one place generation runs, which the CLI, the demo, the trainer and the evaluator call.

Data flow, one module each::

    text --(CLAP, prior, retrieval: conditioning)--> condition rows --(steps.sample: guidance + scheduler loop
    from noise.prepare_latents)--> latents --(codec: VAE decoder)--> log-mel --(codec: vocoder)--> waveform
    --(steps.finish_audio: loudness, peak limit)--> outputs.TTAPipelineOutput (audio + settings)

* :mod:`~tta.pipelines.checks`: every input limit, once (front ends read their ranges from it).
* :mod:`~tta.pipelines.base`: loading, saving, moving, the model's identity (:class:`PipelineBase`).
* :mod:`~tta.pipelines.codec`: waveform <-> log-mel <-> latents, and the vocoder.
* :mod:`~tta.pipelines.conditioning`: text to condition rows; a call's index and prior (:class:`Conditioning`).
* :mod:`~tta.pipelines.noise`, :mod:`~tta.pipelines.rerank`: seeds and starting noise; CLAP re-ranking.
* :mod:`~tta.pipelines.text_to_audio`, :mod:`~tta.pipelines.audio_to_audio`: the numbered steps of
  ``pipe(prompt)`` and ``pipe.edit(audio, prompt)``, sharing :mod:`~tta.pipelines.steps`.
"""

from tta.pipelines.audio_to_audio import SUPER_RESOLUTION_PROMPT, AudioToAudioMixin
from tta.pipelines.base import PipelineBase
from tta.pipelines.checks import DEFAULT_GUIDANCE, DEFAULT_STEPS, MAX_SEED, MAX_STEPS
from tta.pipelines.outputs import EditOutput, TTAPipelineOutput, call_arguments
from tta.pipelines.text_to_audio import TextToAudioMixin


class TTAPipeline(TextToAudioMixin, AudioToAudioMixin, PipelineBase):
    """Text-to-audio and audio-to-audio with an AudioLDM-style model.

    ``pipe(prompt, ...)`` generates (:meth:`TextToAudioMixin.__call__`); ``pipe.edit(audio, prompt, ...)``,
    ``pipe.inpaint`` and ``pipe.super_resolve`` change existing audio (:class:`AudioToAudioMixin`); the
    components and loading are :class:`PipelineBase`'s. A pipeline holds nothing per request: a retrieval
    index, its ``top_k`` and the use of the prior are arguments of each call, so one pipeline serves concurrent
    calls.

    A retrieval-conditioned model (a :class:`~tta.models.retrieval.RetrievalUNet`, from a folder with
    ``retrieval/``) attends to each prompt's nearest recordings in the index a call passes
    (``retrieval=INDEX``); without one it generates from its null tokens.
    """


__all__ = [
    "DEFAULT_GUIDANCE",
    "DEFAULT_STEPS",
    "MAX_SEED",
    "MAX_STEPS",
    "SUPER_RESOLUTION_PROMPT",
    "EditOutput",
    "TTAPipeline",
    "TTAPipelineOutput",
    "call_arguments",
]
