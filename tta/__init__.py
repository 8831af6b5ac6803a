"""tta: text-to-audio with AudioLDM-style latent diffusion.

Public API::

    from tta import TTAPipeline, load_clap
    pipe = TTAPipeline.from_pretrained()          # the shipped default in checkpoints/
    out = pipe("dog barking in rain", audio_length_in_s=5.0)
    out.audios  # numpy [B, N] at out.sample_rate (16 kHz)
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["TTAPipeline", "load_clap", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from tta.models.clap import load_clap
    from tta.pipelines import TTAPipeline


def __getattr__(name: str):
    # Lazy so that `import tta` (and `tta --help`) stays fast and torch-free until needed.
    if name == "TTAPipeline":
        from tta.pipelines import TTAPipeline

        return TTAPipeline
    if name == "load_clap":
        from tta.models.clap import load_clap

        return load_clap
    raise AttributeError(f"module 'tta' has no attribute {name!r}")
