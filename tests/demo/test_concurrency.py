"""The demo serves requests side by side: one pipeline, each request with its own retrieval index and settings.

Eight requests (generations without an index and with two different indexes, and the three edits) submitted at
once through ``gradio_client`` to two pages that share one loaded pipeline give the same audio as the same
requests run one after another. (Wall time under load is measured by ``benchmarks/bench_demo_concurrency.py``.)
"""

from __future__ import annotations

import socket

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("gradio", reason="the demo needs Gradio: pip install 'tta[demo]'")

from gradio_client import Client, handle_file  # noqa: E402

from tests.retrieval.conftest import (  # noqa: E402, F401 - the fixtures
    make_sound_folder,  # noqa: E402
    retrieval_model_dir,
    shared_index,
)

SR = 16000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tones_index(tmp_path_factory, retrieval_model_dir):  # noqa: F811
    """A second index, of the tones alone (the shared one also holds noises)."""
    from tta.cli import main

    root = make_sound_folder(tmp_path_factory.mktemp("tones") / "sounds")
    out = root.parent / "index"
    args = ["index", "build", str(root / "tones"), "-o", str(out), "--model", str(retrieval_model_dir)]
    assert main([*args, "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def pages(retrieval_model_dir, shared_index, tones_index, tmp_path_factory):  # noqa: F811
    """Two pages on one model cache (one pipeline object), offering different indexes; their clients."""
    from tta.demo.app import build_demo
    from tta.demo.models import ModelCache

    cache = ModelCache()
    cache.get(str(retrieval_model_dir))
    demos, clients = [], []
    for index in (shared_index, tones_index):
        demo = build_demo([str(retrieval_model_dir)], cache, concurrency_limit=8, retrieval=str(index))
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        demos.append(demo)
        clients.append(Client(f"http://127.0.0.1:{port}", verbose=False))
    yield clients, cache
    for demo in demos:
        demo.close()


def requests(clip) -> list[tuple[int, tuple, str]]:
    """(page, arguments, API name) of the eight requests."""
    gen = [None, "white noise hiss", "", 0.5, 2, 2.5]
    return [
        (0, (*gen, 1, 1, False, 0), "/generate"),  # no index
        (0, (*gen, 1, 1, True, 0), "/generate"),  # the shared index
        (0, (None, "a pure tone", "", 0.5, 2, 2.5, 2, 1, True, 1), "/generate"),
        (1, (*gen, 1, 1, True, 0), "/generate"),  # the tones' index
        (1, (None, "a pure tone", "", 0.5, 2, 2.5, 3, 1, True, 2), "/generate"),
        (0, (None, clip, "a pure tone", "", 2, 2.5, 4, 0.6), "/style"),
        (1, (None, clip, "white noise hiss", "", 2, 2.5, 5, 1.0, "0.1:0.3"), "/inpaint"),
        (0, (None, clip, "crisp", "", 2, 2.5, 6, 2000, 1.0), "/superres"),
    ]


def test_concurrent_requests_give_the_audio_of_serial_ones(pages, tmp_path):
    clients, cache = pages
    sf.write(tmp_path / "clip.wav", np.random.default_rng(2).standard_normal(SR // 2).astype(np.float32) * 0.1, SR)
    todo = requests(handle_file(str(tmp_path / "clip.wav")))
    serial = [clients[page].predict(*args, api_name=name) for page, args, name in todo]
    jobs = [clients[page].submit(*args, api_name=name) for page, args, name in todo]
    together = [job.result(timeout=600) for job in jobs]
    for (_, _, name), one, both in zip(todo, serial, together):
        np.testing.assert_array_equal(sf.read(one[0])[0], sf.read(both[0])[0], err_msg=name)
        assert one[2] == both[2] and one[3] == both[3]  # the same settings and CLI line
    audio = [sf.read(r[0])[0] for r in serial]
    assert not np.array_equal(audio[0], audio[1]) and not np.array_equal(audio[1], audio[3])  # indexes matter
    shared, tones = (serial[i][2]["retrieved"][0]["clips"] for i in (1, 3))
    assert shared[0]["id"] == "noise/hiss0.flac" and all(c["id"].startswith("tone") for c in tones)
    assert "retrieved" not in serial[0][2] and cache.loads == 1
