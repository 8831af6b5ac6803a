"""The old import path of :class:`TTAPipeline`: everything now lives in :mod:`tta.pipelines`."""

from tta.pipelines import *  # noqa: F403
from tta.pipelines import __all__  # noqa: F401
