"""The Gradio demo's logic, kept out of the UI: model folders and the per-process model cache, request handlers
(input checks, pipeline calls), the spectrogram image and the CLI line of the settings used.

``tta.demo.app`` builds the Gradio page over these (``tta demo``, ``demo/app.py``); the rest imports no Gradio.
"""

from tta.demo.handlers import DemoResult, run_edit, run_generate
from tta.demo.models import ModelCache, list_models

__all__ = ["DemoResult", "ModelCache", "list_models", "run_edit", "run_generate"]
