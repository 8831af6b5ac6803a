"""Fixtures: tiny random family folders written by the reference pipelines (see :mod:`tests.families.builders`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.families.builders import (
    build_audioldm2_pipeline,
    build_musicldm_pipeline,
    build_tango_modules,
    save,
    save_tango,
)


@pytest.fixture(scope="session")
def audioldm2_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    return save(build_audioldm2_pipeline(tok), tmp_path_factory.mktemp("models") / "tiny-audioldm2")


@pytest.fixture(scope="session")
def musicldm_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    return save(build_musicldm_pipeline(tok), tmp_path_factory.mktemp("models") / "tiny-musicldm")


@pytest.fixture(scope="session")
def tango_dir(tmp_path_factory) -> Path:
    return save_tango(build_tango_modules(), tmp_path_factory.mktemp("models") / "tiny-tango")
