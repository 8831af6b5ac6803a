"""Every input limit of tta, in one place.

The pipelines check their arguments with these functions; the CLI and the demo take their flag ranges, slider
bounds and error messages from here too, so a value one front end accepts is never refused by another. Each
check returns the value in its canonical type and raises :class:`~tta.errors.InputError` with a readable
message naming ``what`` otherwise.
"""

from __future__ import annotations

import math
import secrets
from typing import Any

import numpy as np

from tta.audio.limiter import DEFAULT_PEAK_LIMIT, check_peak_limit
from tta.audio.loudness import TARGET_RANGE_LUFS as LOUDNESS_RANGE
from tta.audio.loudness import check_target_lufs as check_loudness
from tta.errors import InputError
from tta.sampling.shapes import MAX_DURATION_S, check_duration

DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 2.5
MAX_STEPS = 500  # more steps gain nothing, and some diffusers schedulers break near num_train_timesteps
MAX_GUIDANCE = 100.0
MAX_SEED = 2**63 - 1  # torch generators take any int64 seed; derived seeds (seed + i) must stay under it
RANDOM_SEED_BITS = 31  # a seed drawn for the user is short enough to retype
MAX_CANDIDATES = 32
MAX_TOP_K = 64
MAX_FEATHER_S = 5.0
MIX_GAIN_DB_RANGE = (-60.0, 20.0)
OUTPUT_TYPES = ("np", "pt")

# what front ends show: (low, high) of each numeric setting
RANGES: dict[str, tuple[float, float]] = {
    "duration": (0.1, MAX_DURATION_S),
    "steps": (1, MAX_STEPS),
    "guidance": (0.0, MAX_GUIDANCE),
    "seed": (0, MAX_SEED),
    "candidates": (1, MAX_CANDIDATES),
    "top_k": (1, MAX_TOP_K),
    "strength": (0.0, 1.0),
    "feather": (0.0, MAX_FEATHER_S),
    "mix_gain_db": MIX_GAIN_DB_RANGE,
    "loudness": LOUDNESS_RANGE,
}

__all__ = [
    "DEFAULT_GUIDANCE",
    "DEFAULT_PEAK_LIMIT",
    "DEFAULT_STEPS",
    "MAX_STEPS",
    "MAX_SEED",
    "RANGES",
    "check_duration",
    "check_loudness",
    "check_peak_limit",
]


def random_seed() -> int:
    """A fresh seed for a call that gave none (recorded in the output's settings)."""
    return secrets.randbelow(2**RANDOM_SEED_BITS)


def check_number(value: Any, what: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite real number in [low, high] (ints, floats, numpy scalars; not bools or strings)."""
    if isinstance(value, (bool, str)):
        raise InputError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"{what} must be a number, got {value!r}") from err
    if not math.isfinite(number) or not low <= number <= high:
        raise InputError(f"{what} must be between {low:g} and {high:g}, got {value!r}")
    return number


def check_int(value: Any, what: str, low: int = 1, high: int | float = math.inf) -> int:
    """A whole number in [low, high] (an int, a numpy integer, or a float/string with no fraction)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        number = int(value)  # exact, even past 2**53
    else:
        real = check_number(value, what)
        if real != int(real):
            raise InputError(f"{what} must be a whole number, got {value!r}")
        number = int(real)
    if not low <= number <= high:
        top = f"{high:g}" if isinstance(high, float) else str(high)
        raise InputError(f"{what} must be an integer between {low} and {top}, got {value!r}")
    return number


def check_prompts(prompt: Any, what: str = "prompt") -> list[str]:
    """One text or a non-empty list of texts, none empty or whitespace."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise InputError(f"{what} must be a non-empty string or a non-empty list of strings")
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise InputError(f"the {what} is empty: describe the sound you want (got {p!r})")
    return list(prompts)


def check_negative(negative_prompt: Any, batch: int) -> list[str]:
    """``batch`` negative prompts: the empty text (None), one text for all, or one per prompt."""
    if negative_prompt is None:
        return [""] * batch
    if isinstance(negative_prompt, str):
        return [negative_prompt] * batch
    if not isinstance(negative_prompt, (list, tuple)) or not all(isinstance(n, str) for n in negative_prompt):
        raise InputError("negative_prompt must be a string or a list of strings")
    if len(negative_prompt) != batch:
        raise InputError(f"got {len(negative_prompt)} negative prompts for {batch} prompts")
    return list(negative_prompt)


def check_steps(value: Any, max_steps: int = MAX_STEPS) -> int:
    """Sampler steps in [1, ``max_steps``] (a scheduler's own ceiling may be lower than :data:`MAX_STEPS`)."""
    return check_int(value, "num_inference_steps", 1, min(MAX_STEPS, max_steps))


def scheduler_step_limit(config) -> int:
    """The most steps a scheduler config allows: half its training timesteps, or for a consistency sampler
    (``LCMScheduler``) the grid it was distilled on (``original_inference_steps``)."""
    limit = int(config.num_train_timesteps) // 2
    grid = getattr(config, "original_inference_steps", None)
    return min(limit, int(grid)) if grid else limit


def check_guidance(value: Any) -> float:
    """A classifier-free guidance scale in [0, :data:`MAX_GUIDANCE`] (guidance is on above 1)."""
    return check_number(value, "guidance_scale", 0.0, MAX_GUIDANCE)


def check_seed(value: Any, what: str = "seed") -> int:
    """One seed in [0, :data:`MAX_SEED`]."""
    return check_int(value, what, 0, MAX_SEED)


def check_seeds(seed: Any, total: int) -> list[int]:
    """One seed per latent: ``seed + i`` for an int (a random one for None), or a list of ``total`` seeds."""
    if seed is None:
        seed = random_seed()
    if isinstance(seed, (list, tuple)):
        seeds = [check_seed(s) for s in seed]
        if len(seeds) != total:
            raise InputError(f"got {len(seeds)} seeds for {total} latents")
        return seeds
    base = check_seed(seed)
    if base + total - 1 > MAX_SEED:
        raise InputError(f"seed {base} leaves no room for {total} consecutive seeds (at most {MAX_SEED})")
    return [base + i for i in range(total)]


def check_unit(value: Any, what: str) -> float:
    """A number in [0, 1] (``strength``)."""
    return check_number(value, what, 0.0, 1.0)


def check_feather(value: Any) -> float:
    """The fade at inpainting borders, seconds in [0, :data:`MAX_FEATHER_S`]."""
    return check_number(value, "feather_s", 0.0, MAX_FEATHER_S)


def check_gain_db(value: Any) -> float:
    """The level of a mixed prompt's later sounds, dB in :data:`MIX_GAIN_DB_RANGE`."""
    return check_number(value, "mix_gain_db", *MIX_GAIN_DB_RANGE)


def check_top_k(value: Any) -> int | None:
    """Neighbours a retrieval model attends to, in [1, :data:`MAX_TOP_K`]; None: the model's own count."""
    return None if value is None else check_int(value, "top_k", 1, MAX_TOP_K)


def check_count(value: Any, what: str, high: int | float = math.inf) -> int:
    """A count >= 1 (waveforms per prompt, candidates)."""
    return check_int(value, what, 1, high)


def check_output_type(value: Any) -> str:
    if value not in OUTPUT_TYPES:
        raise InputError(f"output_type must be 'np' or 'pt', got {value!r}")
    return value
