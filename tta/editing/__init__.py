"""Audio editing on the text-to-audio model: what to regenerate (time ranges, a band above a cut-off), the
input audio's checks, and the per-step blend that keeps the rest (used by :meth:`tta.TTAPipeline.edit`)."""

from tta.editing.blend import KeepBlend, img2img_timesteps
from tta.editing.inputs import MAX_UPLOAD_BYTES, MIN_DURATION_S, load_edit_audio
from tta.editing.regions import EditRegion, detect_cutoff_hz, parse_range

__all__ = [
    "MAX_UPLOAD_BYTES",
    "MIN_DURATION_S",
    "EditRegion",
    "KeepBlend",
    "detect_cutoff_hz",
    "img2img_timesteps",
    "load_edit_audio",
    "parse_range",
]
