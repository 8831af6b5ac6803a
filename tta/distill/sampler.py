"""The student's sampler: diffusers' ``LCMScheduler`` (multistep consistency sampling), with its re-noising drawn
reproducibly per latent.

``LCMScheduler.step`` adds fresh noise between steps (not after the last one, so 1 step is deterministic). Drawn
from torch's global RNG, as diffusers does when no generator is given, a seeded tta call would not repeat, and
a latent of a batch would not regenerate alone. :class:`LCMSampler` gives each latent its own generator, seeded
by a hash of that latent's state at the first step (its starting noise, itself seeded per latent by the
pipeline), so the whole sampling run is a function of the starting noise: the same seed gives the same audio,
alone or in a batch. Everything else is ``LCMScheduler``'s.
"""

from __future__ import annotations

import hashlib

import torch
from diffusers import LCMScheduler


def row_seed(row: torch.Tensor) -> int:
    """A 63-bit seed from the bytes of one latent (float32, CPU)."""
    data = row.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little") >> 1


class LCMSampler(LCMScheduler):
    """``LCMScheduler`` whose between-step noise comes from per-latent generators (see the module docstring)."""

    _row_generators: list[torch.Generator] | None = None

    def set_timesteps(self, *args, **kwargs):
        self._row_generators = None
        return super().set_timesteps(*args, **kwargs)

    def step(self, model_output, timestep, sample, generator=None, return_dict: bool = True):
        if generator is None:
            if self._row_generators is None or len(self._row_generators) != sample.shape[0]:
                self._row_generators = [torch.Generator(sample.device).manual_seed(row_seed(row)) for row in sample]
            generator = self._row_generators
        return super().step(model_output, timestep, sample, generator=generator, return_dict=return_dict)
