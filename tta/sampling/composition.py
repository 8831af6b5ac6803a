"""Prompts that name several sounds: cut them into parts, one condition per sound.

A single CLAP embedding of "a dog barking in the rain" (or its retrieval-prior mapping) lands near recordings of
*one* of the sounds, and the model renders that one. :func:`split_prompt` finds the candidate parts at English
connectives ("in", "while", "and", "next to", ...); which parts name real sounds is decided by the model's
retrieval prior (:meth:`tta.models.prior.RetrievalPrior.sound_parts`), so "footsteps on gravel" stays one sound
when "gravel" alone matches no recording of the bank well. The pipeline then renders the sounds either as a mix
of separate generations (:mod:`tta.sampling.mixing`, the default) or with composable diffusion (Liu et al. 2022,
"Compositional Visual Generation with Composable Diffusion Models"), which guides one latent towards each
concept and adds the directions: ``eps_u + g * mean_j (eps_j - eps_u)`` (:mod:`tta.sampling.guidance`).
"""

from __future__ import annotations

import re

# Words and phrases that join two sounds in an English description; longer phrases first (regex alternation).
# Not "on", "through" or "against": they nearly always name a surface ("footsteps on gravel", "rain on a tin roof",
# "wind through trees"), which changes the sound rather than adding one.
CONNECTIVES: tuple[str, ...] = (
    "accompanied by",
    "together with",
    "followed by",
    "mixed with",
    "along with",
    "as well as",
    "next to",
    "close to",
    "while",
    "whilst",
    "with",
    "and",
    "plus",
    "in",
    "over",
    "above",
    "under",
    "beneath",
    "below",
    "beside",
    "behind",
    "near",
    "amid",
    "amidst",
    "among",
    "during",
    "as",
    "then",
)
_SPLIT = re.compile(
    r"\s*(?:[,;]|\b(?:" + "|".join(re.escape(c).replace(r"\ ", r"\s+") for c in CONNECTIVES) + r")\b)\s*",
    flags=re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_]{2,}")  # a part must hold at least one word of two letters


def split_prompt(prompt: str) -> list[str]:
    """The candidate sound descriptions of ``prompt``, in order: the text between connectives and commas.

    ``"a dog barking in the rain"`` -> ``["a dog barking", "the rain"]``; a prompt without a connective gives
    ``[prompt]``. Empty pieces (two connectives in a row, a trailing comma) are dropped.
    """
    parts = [part.strip() for part in _SPLIT.split(prompt)]
    parts = [part for part in parts if _WORD.search(part)]
    return parts or [prompt.strip()]
