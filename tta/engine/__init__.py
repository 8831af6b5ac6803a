"""CPU inference engines for the same weights (issue #28): the UNet, VAE decoder and vocoder exported once per
model hash to ONNX and run by ONNX Runtime or OpenVINO.

* :mod:`tta.engine.export`: the ONNX export of one component, with its checksummed manifest.
* :mod:`tta.engine.runtime`: the runtimes' sessions and the shims that stand in for the torch modules.
* :mod:`tta.engine.install`: ``install(pipe, engine)`` (``pipe.enable_engine``), the cache and the check.

Use ``TTAPipeline.from_pretrained(path, engine="onnx")``, ``pipe.enable_engine("auto")`` or ``--engine``;
install the runtimes with ``pip install 'tta[engine]'``.
"""

from tta.engine.install import AUTO_ORDER, ENGINES, available_runtimes, check_engine, install, uninstall

__all__ = ["AUTO_ORDER", "ENGINES", "available_runtimes", "check_engine", "install", "uninstall"]
