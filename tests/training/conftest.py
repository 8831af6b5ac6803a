"""Fixtures of the training tests."""

from __future__ import annotations

import pytest

from tests.training.audio_corpus import make_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A corpus root with 2 classes, 8 FLAC clips (train 6, valid 2) and a manifest."""
    return make_corpus(tmp_path_factory.mktemp("corpus"))
