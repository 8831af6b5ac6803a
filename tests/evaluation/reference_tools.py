"""The reference implementations our metrics are checked against, loaded without their packages' heavy imports.

* fadtk (``pip install --no-deps fadtk==1.1.0``): ``fadtk/fad.py`` imports torchaudio and hypy_utils at module
  level, which the maths does not use. :func:`reference_function` compiles just the named function (or method)
  from the installed file, with the module-level names it uses supplied explicitly.
* frechet-audio-distance (``pip install --no-deps frechet-audio-distance==0.3.4``): same, its ``fad.py``
  imports laion_clap and encodec.
* audioldm_eval (``pip install --no-deps audioldm-eval==0.0.3``): ``metrics/kl.py`` and ``metrics/isc.py``
  import only torch/numpy and are loaded as files; its package ``__init__`` is never run.
* torchvggish (``pip install --no-deps torchvggish==0.2``) and panns_inference (``pip install --no-deps
  panns-inference==0.1.1 torchlibrosa==0.1.0``): imported under stub parent packages; ``resampy`` (only used
  to resample, which the tests never need) is stubbed when absent.
* kadtk (``pip install --no-deps kadtk==1.1.0``): ``kadtk/kad.py`` imports hypy_utils and its loaders at module
  level; :func:`kadtk_functions` compiles ``calc_kernel_audio_distance`` and ``median_pairwise_distance`` alone.
* aisfx (``pip install --no-deps aisfx==0.1.2``): its modules imported under a stub parent package (its
  ``__init__`` is not run); the paper's front end needs Essentia (``pip install --no-deps
  essentia==2.1b6.dev1389 six==1.17.0``), checked separately by :func:`aisfx_essentia`.

Each loader skips the calling test with the install line when the package is absent.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import sys
import types
from pathlib import Path

import pytest


def package_dir(name: str, install: str) -> Path:
    """The installed folder of package ``name`` (found without importing it), or skip."""
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__path__", None):
        return Path(list(loaded.__path__)[0])
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"reference package {name} not installed ({install})")
    return Path(list(spec.submodule_search_locations)[0])


def reference_function(file: Path, name: str, namespace: dict):
    """Compile the function or method ``name`` defined in ``file`` (first match) into ``namespace``."""
    tree = ast.parse(file.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            code = compile(ast.Module(body=[node], type_ignores=[]), str(file), "exec")
            exec(code, namespace)  # noqa: S102 - the installed reference package's own code
            return namespace[name]
    raise LookupError(f"{name} not found in {file}")


def fadtk_functions() -> types.SimpleNamespace:
    """fadtk's ``calc_embd_statistics``, ``calc_frechet_distance`` and ``FrechetAudioDistance.score_inf``."""
    import numpy as np
    from numpy.lib.scimath import sqrt as scisqrt
    from scipy import linalg

    file = package_dir("fadtk", "pip install --no-deps fadtk==1.1.0") / "fad.py"
    ns = {"np": np, "linalg": linalg, "scisqrt": scisqrt, "log": logging.getLogger("fadtk-reference")}
    ns["tq"] = lambda items, desc=None: items
    ns["FADInfResults"] = types.SimpleNamespace
    stats = reference_function(file, "calc_embd_statistics", ns)
    frechet = reference_function(file, "calc_frechet_distance", ns)
    score_inf = reference_function(file, "score_inf", ns)
    return types.SimpleNamespace(calc_embd_statistics=stats, calc_frechet_distance=frechet, score_inf=score_inf)


def frechet_audio_distance_function():
    """frechet-audio-distance's ``FrechetAudioDistance.calculate_frechet_distance`` as a plain function."""
    import numpy as np
    from scipy import linalg

    install = "pip install --no-deps frechet-audio-distance==0.3.4"
    file = package_dir("frechet_audio_distance", install) / "fad.py"
    method = reference_function(file, "calculate_frechet_distance", {"np": np, "linalg": linalg})
    return lambda mu1, sigma1, mu2, sigma2: method(None, mu1, sigma1, mu2, sigma2)


def _module_from_file(name: str, file: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def audioldm_eval_metric(name: str) -> types.ModuleType:
    """``audioldm_eval/metrics/<name>.py`` (``kl`` or ``isc``) loaded as a file."""
    root = package_dir("audioldm_eval", "pip install --no-deps audioldm-eval==0.0.3")
    return _module_from_file(f"_reference_audioldm_eval_{name}", root / "metrics" / f"{name}.py")


def _stub_package(name: str, folder: Path) -> None:
    if name not in sys.modules:
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]
        sys.modules[name] = module


def torchvggish_modules() -> types.SimpleNamespace:
    """torchvggish's ``torchvggish`` (the network) and ``vggish_input`` (the front-end) modules."""
    root = package_dir("torchvggish", "pip install --no-deps torchvggish==0.2")
    if "resampy" not in sys.modules and importlib.util.find_spec("resampy") is None:
        sys.modules["resampy"] = types.ModuleType("resampy")  # only used to resample; inputs are 16 kHz
    _stub_package("torchvggish", root)
    return types.SimpleNamespace(
        net=importlib.import_module("torchvggish.torchvggish"),
        front=importlib.import_module("torchvggish.vggish_input"),
    )


def panns_models() -> types.ModuleType:
    """panns_inference's ``models`` module (its ``__init__`` downloads a label file: not run)."""
    root = package_dir("panns_inference", "pip install --no-deps panns-inference==0.1.1")
    package_dir("torchlibrosa", "pip install --no-deps torchlibrosa==0.1.0")
    _stub_package("panns_inference", root)
    return importlib.import_module("panns_inference.models")


KADTK = "pip install --no-deps kadtk==1.1.0"
AISFX = "pip install --no-deps aisfx==0.1.2"
ESSENTIA = "pip install --no-deps essentia==2.1b6.dev1389 six==1.17.0"


def kadtk_functions() -> types.SimpleNamespace:
    """kadtk's ``calc_kernel_audio_distance`` and ``median_pairwise_distance``."""
    import numpy as np
    import torch

    file = package_dir("kadtk", KADTK) / "kad.py"
    ns = {"torch": torch, "np": np, "SCALE_FACTOR": 100}
    kad = reference_function(file, "calc_kernel_audio_distance", ns)
    median = reference_function(file, "median_pairwise_distance", ns)
    return types.SimpleNamespace(calc_kernel_audio_distance=kad, median_pairwise_distance=median)


def aisfx_modules() -> types.SimpleNamespace:
    """aisfx's ``models.cnn2d``, ``inference`` and ``preprocessing`` modules."""
    root = package_dir("aisfx", AISFX)
    _stub_package("aisfx", root)
    return types.SimpleNamespace(
        cnn2d=importlib.import_module("aisfx.models.cnn2d"),
        inference=importlib.import_module("aisfx.inference"),
        preprocessing=importlib.import_module("aisfx.preprocessing"),
        root=root,
    )


def aisfx_essentia():
    """aisfx's Essentia spectrogram module (the paper's front end), or skip without Essentia."""
    aisfx_modules()
    try:
        return importlib.import_module("aisfx.spectrogram.spectrogram_essentia")
    except ImportError as err:
        pytest.skip(f"Essentia not importable ({err}; {ESSENTIA})")
