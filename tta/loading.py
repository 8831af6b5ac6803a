"""Reading and writing model folders: tta's own format and diffusers' AudioLDM format.

Both are diffusers-like folders with a ``model_index.json`` whose ``_class_name`` tells them apart:

* tta (``"TTAPipeline"``): ``unet/`` and ``vae/`` (diffusers ``save_pretrained``), ``vocoder/`` (transformers
  ``SpeechT5HifiGan`` or tta's ``ISTFTVocoder``, by the ``model_type`` of its config), ``clap/`` (any folder :func:`tta.models.clap.load_clap` reads),
  ``scheduler/scheduler_config.json``.
* diffusers AudioLDM (``"AudioLDMPipeline"``): ``unet/``, ``vae/``, ``vocoder/``, ``text_encoder/`` (CLAP text
  tower), ``tokenizer/``, ``scheduler/``.

:func:`load_vae` and :func:`load_vocoder` read one component (``vae/``, ``vocoder/``) of a folder that may hold
nothing else (the round trip of ``tta reconstruct`` needs no UNet, CLAP or ``model_index.json``).

Weights are read from safetensors only. Every file is checked before anything loads, so a missing or corrupt
file is one clear :class:`ModelLoadError`, and nothing touches the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tta.errors import InputError, ModelLoadError

TTA_CLASS_NAME = "TTAPipeline"
AUDIOLDM_CLASS_NAME = "AudioLDMPipeline"
INDEX_NAME = "model_index.json"
SCHEDULER_CONFIG = "scheduler/scheduler_config.json"

DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
TRANSFORMERS_WEIGHTS = "model.safetensors"

# component -> (config file, weights file) inside its sub-folder
_FILES = {
    "unet": ("config.json", DIFFUSERS_WEIGHTS),
    "vae": ("config.json", DIFFUSERS_WEIGHTS),
    "vocoder": ("config.json", TRANSFORMERS_WEIGHTS),
    "text_encoder": ("config.json", TRANSFORMERS_WEIGHTS),
}
_LAYOUTS = {
    TTA_CLASS_NAME: ("unet", "vae", "vocoder"),
    AUDIOLDM_CLASS_NAME: ("unet", "vae", "vocoder", "text_encoder"),
}


@dataclass
class Components:
    """What a model folder holds, loaded: the modules, the CLAP, and the scheduler config."""

    unet: Any
    vae: Any
    vocoder: Any
    clap: Any
    scheduler_config: dict[str, Any]
    source_format: str  # TTA_CLASS_NAME or AUDIOLDM_CLASS_NAME
    sampling_defaults: dict[str, Any] = field(default_factory=dict)  # model_index.json's "sampling"
    prior: Any = None  # optional RetrievalPrior (``prior/``)
    reranker: Any = None  # optional CLAP with an audio tower for re-ranking (a family folder's, tta.families)


SAMPLING_KEYS = {"guidance_scale": (float, 0.0, 100.0), "num_inference_steps": (int, 1, 500)}


def check_sampling_defaults(defaults: Any, where: str) -> dict[str, Any]:
    """A model's own sampling defaults (``{"guidance_scale": 4.0, "num_inference_steps": 20}``, either key
    optional), checked: unknown keys and out-of-range values raise :class:`InputError` naming ``where``."""
    if not isinstance(defaults, dict):
        raise InputError(f"{where}: sampling defaults must be a JSON object, got {defaults!r}")
    checked = {}
    for key, value in defaults.items():
        if key not in SAMPLING_KEYS:
            raise InputError(f"{where}: unknown sampling default {key!r} (known: {', '.join(SAMPLING_KEYS)})")
        kind, low, high = SAMPLING_KEYS[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
        if not ok or (kind is int and value != int(value)):
            raise InputError(
                f"{where}: sampling default {key} must be a {kind.__name__} in [{low}, {high}], got {value!r}"
            )
        checked[key] = kind(value)
    return checked


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelLoadError(f"missing file {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"corrupt JSON file {path}: {err}") from err
    if not isinstance(data, dict):
        raise ModelLoadError(f"corrupt JSON file {path}: expected an object")
    return data


def read_model_index(folder: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``model_index.json``; its ``_class_name`` must be a known format."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"model folder not found: {folder}")
    index = _read_json(folder / INDEX_NAME)
    name = index.get("_class_name")
    if name not in _LAYOUTS:
        from tta.families import FAMILIES

        known = ", ".join(repr(n) for n in (TTA_CLASS_NAME, AUDIOLDM_CLASS_NAME, *FAMILIES))
        raise ModelLoadError(f"{folder / INDEX_NAME} names {name!r}; tta reads {known} folders")
    return index


def _weights_present(sub: Path, weights: str) -> bool:
    return (sub / weights).is_file() or (sub / f"{weights}.index.json").is_file()


def check_model_folder(folder: str | os.PathLike) -> str:
    """Check that every file a model folder needs is there; return its format (``_class_name``)."""
    folder = Path(folder)
    name = read_model_index(folder)["_class_name"]
    for component in _LAYOUTS[name]:
        config, weights = _FILES[component]
        sub = folder / component
        _read_json(sub / config)
        if not _weights_present(sub, weights):
            other = [p.name for p in sub.glob("*.bin")] if sub.is_dir() else []
            hint = f" (found {', '.join(other)}: tta loads safetensors only)" if other else ""
            raise ModelLoadError(f"missing weights {sub / weights}{hint}")
    _read_json(folder / SCHEDULER_CONFIG)
    if name == TTA_CLASS_NAME:
        _read_json(folder / "clap" / "config.json")
        if (folder / "prior").is_dir():
            _read_json(folder / "prior" / "config.json")
            if not (folder / "prior" / "model.safetensors").is_file():
                raise ModelLoadError(f"missing weights {folder / 'prior' / 'model.safetensors'}")
    elif not (folder / "tokenizer").is_dir():
        raise ModelLoadError(f"missing folder {folder / 'tokenizer'}")
    return name


def _load(what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ModelLoadError:
        raise
    except Exception as err:  # safetensors / config errors -> one readable line
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"cannot load {what}: {msg}") from err


def _component_dir(folder: str | os.PathLike, component: str) -> Path:
    """``folder/component`` for a model folder; ``folder`` itself when it is the component folder (has a config)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelLoadError(f"model folder not found: {folder}")
    if not (folder / component).is_dir() and (folder / "config.json").is_file():
        return folder
    return folder / component


def _check_component(sub: Path, component: str) -> None:
    config, weights = _FILES[component]
    _read_json(sub / config)
    if not _weights_present(sub, weights):
        raise ModelLoadError(f"missing weights {sub / weights}")


def load_vae(folder: str | os.PathLike):
    """The VAE (diffusers ``AutoencoderKL``) of a model folder's ``vae/`` (or of a VAE folder), on the CPU, in
    eval mode. Needs only ``vae/config.json`` and ``vae/diffusion_pytorch_model.safetensors``.

    Raises:
        ModelLoadError: a file is missing, truncated or corrupt (the message names it).
    """
    from diffusers import AutoencoderKL

    sub = _component_dir(folder, "vae")
    _check_component(sub, "vae")
    opts = {"use_safetensors": True, "local_files_only": True}
    return _load(f"{sub / DIFFUSERS_WEIGHTS}", AutoencoderKL.from_pretrained, str(sub), **opts).eval()


def load_vocoder(folder: str | os.PathLike):
    """The vocoder of a model folder's ``vocoder/`` (or of a vocoder folder): transformers ``SpeechT5HifiGan``
    or tta's ``ISTFTVocoder`` (by ``model_type`` in its config), on the CPU, in eval mode. Needs only
    ``vocoder/config.json`` and ``vocoder/model.safetensors``.

    Raises:
        ModelLoadError: a file is missing, truncated or corrupt (the message names it).
    """
    from tta.models.vocoder import vocoder_class

    sub = _component_dir(folder, "vocoder")
    _check_component(sub, "vocoder")
    cls = vocoder_class(_read_json(sub / "config.json"))
    opts = {"use_safetensors": True, "local_files_only": True}
    return _load(f"{sub / TRANSFORMERS_WEIGHTS}", cls.from_pretrained, str(sub), **opts).eval()


def load_components(folder: str | os.PathLike) -> Components:
    """Load a tta or diffusers AudioLDM folder (format from ``model_index.json``) on the CPU, in eval mode."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from tta.families import load_family
    from tta.models.clap import load_clap
    from tta.models.clap.hf import HFClapText
    from tta.models.vocoder import vocoder_class

    folder = Path(folder)
    family = load_family(folder)  # AudioLDM 2, MusicLDM, Tango folders: tta.families
    if family is not None:
        return family
    name = check_model_folder(folder)
    opts = {"use_safetensors": True, "local_files_only": True}
    unet = _load(f"{folder / 'unet'}", UNet2DConditionModel.from_pretrained, str(folder / "unet"), **opts)
    if name == TTA_CLASS_NAME and (folder / "retrieval").is_dir():
        unet = _load_retrieval_unet(folder, unet)
    vae = _load(f"{folder / 'vae'}", AutoencoderKL.from_pretrained, str(folder / "vae"), **opts)
    voc_class = vocoder_class(_read_json(folder / "vocoder" / "config.json"))
    vocoder = _load(f"{folder / 'vocoder'}", voc_class.from_pretrained, str(folder / "vocoder"), **opts)
    if name == TTA_CLASS_NAME:
        clap = _load(f"{folder / 'clap'}", load_clap, folder / "clap")
    else:
        clap = _load(
            f"{folder / 'text_encoder'}", HFClapText.from_pretrained, folder / "text_encoder", folder / "tokenizer"
        )
    scheduler_config = _read_json(folder / SCHEDULER_CONFIG)
    try:
        sampling = check_sampling_defaults(read_model_index(folder).get("sampling", {}), str(folder / INDEX_NAME))
    except InputError as err:
        raise ModelLoadError(str(err)) from None
    prior = _load_prior(folder, clap) if name == TTA_CLASS_NAME and (folder / "prior").is_dir() else None
    for module in (unet, vae, vocoder, clap):
        module.eval()
    return Components(unet, vae, vocoder, clap, scheduler_config, name, sampling, prior)


def clap_fingerprint(clap_dir: str | os.PathLike) -> str:
    """SHA-256 (first 16 hex chars) of a CLAP folder's weights: which CLAP a prior's bank or a retrieval index was
    built with. It hashes the tensors (names, dtypes, shapes, values), not the files' bytes, so a CLAP saved again
    (a training export) keeps its fingerprint; an unreadable file is hashed as bytes."""
    import torch
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for path in sorted(Path(clap_dir).glob("*.safetensors")):
        digest.update(path.name.encode() + b"\0")
        try:
            tensors = load_file(str(path))
        except Exception:  # the loader reports a corrupt CLAP; here it only needs to differ from a good one
            digest.update(path.read_bytes())
            continue
        for name in sorted(tensors):
            t = tensors[name].contiguous()
            digest.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _file_fingerprint(clap_dir: Path) -> str:
    """The fingerprint priors written before tta 0.1.0's retrieval index carry: a hash of the files' bytes."""
    digest = hashlib.sha256()
    for path in sorted(clap_dir.glob("*.safetensors")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _load_retrieval_unet(folder: Path, unet):
    """The folder's UNet wrapped with its ``retrieval/`` encoder (:class:`tta.models.retrieval.RetrievalUNet`)."""
    from tta.models.retrieval import RetrievalEncoder, RetrievalUNet

    sub = folder / "retrieval"
    _check_component(sub, "unet")  # config.json + diffusion_pytorch_model.safetensors, as diffusers writes them
    opts = {"use_safetensors": True, "local_files_only": True}
    encoder = _load(f"{sub}", RetrievalEncoder.from_pretrained, str(sub), **opts)
    try:
        return RetrievalUNet(unet, encoder).eval()
    except InputError as err:
        raise ModelLoadError(f"{sub}: {err}") from err


def _load_prior(folder: Path, clap):
    """The folder's ``prior/``, or None (with a warning) when it was built with another CLAP than ``clap/``."""
    from tta.models.prior import RetrievalPrior

    prior = RetrievalPrior.from_pretrained(folder / "prior")
    if prior.embedding_dim != clap.embedding_dim:
        raise ModelLoadError(
            f"{folder / 'prior'}: its bank is {prior.embedding_dim}-d, the CLAP's space {clap.embedding_dim}-d"
        )
    known = {clap_fingerprint(folder / "clap"), _file_fingerprint(folder / "clap")}
    if prior.clap_fingerprint is not None and prior.clap_fingerprint not in known:
        warnings.warn(
            f"{folder / 'prior'} was built with another CLAP than {folder / 'clap'}; it is not used. Rebuild it: "
            f"tta prior build --model {folder}",
            stacklevel=3,
        )
        return None
    return prior


# what a model folder's components are: replaced, not carried over, when a model is saved over another
REPLACED_ENTRIES = frozenset(
    {
        "unet",
        "retrieval",
        "vae",
        "vocoder",
        "clap",
        "scheduler",
        "text_encoder",
        "tokenizer",
        "feature_extractor",
        INDEX_NAME,
    }
)


def _shareable(root: Path) -> None:
    """Read (and for folders, enter) permission as the umask allows, for a tree that ``mkdtemp`` (0700) and some
    writers (0600 safetensors files) made private: a model folder is meant to be read by others. Other bits (a
    script's execute bit) are kept."""
    from tta.audio.io import umask

    mask = umask()
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & 0o7777 | ((0o755 if path.is_dir() else 0o644) & ~mask))


def save_components(
    folder: str | os.PathLike,
    unet,
    vae,
    vocoder,
    clap,
    scheduler_config: dict[str, Any],
    clap_backend: str,
    sampling_defaults: dict[str, Any] | None = None,
    prior=None,
) -> Path:
    """Write a tta model folder. It is built in a temporary sibling folder and renamed into place at the end,
    so an interrupted save never leaves a half-written model at ``folder``. Files and folders already in
    ``folder`` that are not model components (a README, generated samples) are carried over; the components
    of a diffusers layout (``text_encoder/``, ``tokenizer/``) are replaced along with the rest.
    ``sampling_defaults`` (see :func:`check_sampling_defaults`) go into ``model_index.json`` as ``"sampling"``.
    A ``prior`` (:class:`~tta.models.prior.RetrievalPrior`) is written to ``prior/``, tagged with the CLAP's
    fingerprint; without one, an existing ``prior/`` is carried over like the model card, and the loader
    ignores it (with a warning) if the CLAP written here is not the one it was built with."""
    from tta import __version__

    sampling = check_sampling_defaults(sampling_defaults or {}, "sampling_defaults")
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        from tta.models.retrieval import RetrievalUNet

        if isinstance(unet, RetrievalUNet):  # unet/ stays a plain diffusers folder; the encoder beside it
            unet.encoder.save_pretrained(str(tmp / "retrieval"), safe_serialization=True)
            unet = unet.unet
        unet.save_pretrained(str(tmp / "unet"), safe_serialization=True)
        vae.save_pretrained(str(tmp / "vae"), safe_serialization=True)
        vocoder.save_pretrained(str(tmp / "vocoder"), safe_serialization=True)
        clap.save_pretrained(tmp / "clap")
        if prior is not None:
            prior.save_pretrained(tmp / "prior", clap_fingerprint=clap_fingerprint(tmp / "clap"))
        for sub in ("unet", "vae", "vocoder"):  # where a loaded module came from is not part of the model
            config_file = tmp / sub / "config.json"
            config = json.loads(config_file.read_text())
            if config.pop("_name_or_path", None) is not None:
                config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (tmp / "scheduler").mkdir()
        (tmp / SCHEDULER_CONFIG).write_text(json.dumps(scheduler_config, indent=2, sort_keys=True) + "\n")
        index = {
            "_class_name": TTA_CLASS_NAME,
            "_tta_version": __version__,
            "unet": ["diffusers", type(unet).__name__],
            "vae": ["diffusers", type(vae).__name__],
            "vocoder": [_library(vocoder), type(vocoder).__name__],
            "clap": ["tta", clap_backend],
            "scheduler": ["diffusers", scheduler_config.get("_class_name", "DDIMScheduler")],
        }
        if (tmp / "retrieval").is_dir():
            index["retrieval"] = ["tta", "RetrievalEncoder"]
        if sampling:
            index["sampling"] = sampling
        (tmp / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
        if folder.is_dir():  # keep what else the folder holds (a model card, samples): copied, never moved
            for entry in folder.iterdir():
                if entry.name.startswith(".") or (tmp / entry.name).exists() or entry.name in REPLACED_ENTRIES:
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, tmp / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, tmp / entry.name)
        _shareable(tmp)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _library(module) -> str:
    """Which library a component's class is from, as ``model_index.json`` names it."""
    return "tta" if type(module).__module__.startswith("tta.") else type(module).__module__.split(".")[0]


def model_hash(folder: str | os.PathLike, as_before_0_2: bool = False) -> str:
    """SHA-256 (hex, first 16 chars) over the model's configs and weight files, with their relative paths.

    ``as_before_0_2``: the hash tta 0.1 gave the same folder, whose ``model_index.json`` labelled tta's own
    ``ISTFTVocoder`` a transformers class (so sidecars written then still match the model they came from).
    """
    folder = Path(folder)
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and (p.suffix in (".json", ".safetensors", ".txt", ".model") or _is_tango_hub_weights(folder, p))
        and not _in_student(folder, p)
    )
    for path in files:
        digest.update(str(path.relative_to(folder).as_posix()).encode() + b"\0")
        if as_before_0_2 and path == folder / INDEX_NAME:
            digest.update(_index_before_0_2(path.read_text()).encode())
            continue
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _is_tango_hub_weights(folder: Path, path: Path) -> bool:
    """A Tango hub folder's pickled weights (``pytorch_model_main.bin``...: :mod:`tta.families.tango_hub`), the only
    ``.bin`` files a model's hash covers (others beside safetensors in diffusers folders are ignored, as before)."""
    return path.parent == folder and path.suffix == ".bin" and path.name.startswith("pytorch_model_")


def _in_student(folder: Path, path: Path) -> bool:
    """Whether ``path`` lies in a distilled student's sub-folder (``tta.distill``): an optional add-on that leaves
    the model's own hash (and its sidecars) as they were."""
    parts = path.relative_to(folder).parts
    return len(parts) > 1 and (folder / parts[0] / "student.json").is_file()


def _index_before_0_2(text: str) -> str:
    index = json.loads(text)
    if index.get("vocoder") == ["tta", "ISTFTVocoder"]:
        index["vocoder"] = ["transformers", "ISTFTVocoder"]
    return json.dumps(index, indent=2) + "\n"
