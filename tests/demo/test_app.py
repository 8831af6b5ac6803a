"""The served demo through ``gradio_client``: results, readable errors, ten concurrent requests, localhost only."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("gradio", reason="the demo needs Gradio: pip install 'tta[demo]'")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def client(demo_server):
    return Client(demo_server[0], verbose=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("page-uploads")
    sf.write(folder / "clip.wav", np.random.default_rng(2).standard_normal(SR // 2).astype(np.float32) * 0.1, SR)
    (folder / "readme.wav").write_text("a text file posing as audio\n")
    sf.write(folder / "two_hours.flac", np.zeros(2 * 3600 * 8000, dtype=np.int16), 8000)
    return folder


def generate(client, prompt="a dog barks", duration=0.5, seed=1):
    return client.predict(None, prompt, "", duration, 2, 2.5, seed, 1, api_name="/generate")


def test_serves_on_localhost_with_upload_limit(demo_server):
    from tta.editing import MAX_UPLOAD_BYTES

    _, demo = demo_server
    assert demo.server_name == "127.0.0.1" and demo.max_file_size == MAX_UPLOAD_BYTES


def test_generate_through_the_page(client):
    audio, image, settings, cli = generate(client, duration=0.75, seed=4)
    info = sf.info(audio)
    assert info.samplerate == SR and info.frames == 12000
    assert settings["seed"] == 4 and cli.startswith("tta generate 'a dog barks' --duration 0.75")
    assert image.endswith((".png", ".webp", ".jpg", ".jpeg"))


def test_edits_through_the_page(client, files):
    clip = handle_file(str(files / "clip.wav"))
    audio, _, settings, _ = client.predict(None, clip, "a cat", "", 2, 2.5, 3, 1.0, "0.1:0.3", api_name="/inpaint")
    assert sf.info(audio).frames == SR // 2 and settings["ranges"] == [[0.1, 0.3]]
    audio, _, settings, _ = client.predict(None, clip, "a cat", "", 2, 2.5, 3, 2000, 0.7, api_name="/superres")
    assert settings["cutoff_hz"] == 2000 and settings["strength"] == 0.7


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c, f: generate(c, prompt="  "), "the prompt is empty"),
        (lambda c, f: generate(c, duration=120), "greater than maximum value 60"),
        (
            lambda c, f: c.predict(
                None, handle_file(str(f / "readme.wav")), "dog", "", 2, 2.5, 1, 0.5, api_name="/style"
            ),
            "cannot read audio file",
        ),
        (
            lambda c, f: c.predict(
                None, handle_file(str(f / "two_hours.flac")), "dog", "", 2, 2.5, 1, 0.5, api_name="/style"
            ),
            "lasts 7200.0 s; edits take at most 60 s",
        ),
        (
            lambda c, f: c.predict(
                None, handle_file(str(f / "clip.wav")), "dog", "", 2, 2.5, 1, 1.5, api_name="/style"
            ),
            "greater than maximum value 1",
        ),
        (
            lambda c, f: c.predict(
                None, handle_file(str(f / "clip.wav")), "dog", "", 2, 2.5, 1, -1, api_name="/style"
            ),
            "less than minimum value 0",
        ),
    ],
)
def test_bad_input_is_a_readable_message(client, files, call, message):
    with pytest.raises(AppError) as err:
        call(client, files)
    assert message in str(err.value) and "Traceback" not in str(err.value)


def test_ten_concurrent_requests_complete_with_bounded_memory(demo_server, client):
    import psutil

    _, demo = demo_server
    generate(client, seed=0)  # warm up: model loaded, first-call allocations done
    rss_before = psutil.Process().memory_info().rss
    jobs = [
        client.submit(None, "rain on a roof", "", 0.5, 2, 2.5, seed, 1, api_name="/generate") for seed in range(10)
    ]
    results = [job.result(timeout=600) for job in jobs]
    rss_after = psutil.Process().memory_info().rss
    assert len(results) == 10
    assert [r[2]["seed"] for r in results] == list(range(10))
    assert all(sf.info(r[0]).frames == 8000 for r in results)
    assert (rss_after - rss_before) < 300 * 2**20, (rss_before, rss_after)
    print(f"RSS before {rss_before / 2**20:.0f} MiB, after 10 requests {rss_after / 2**20:.0f} MiB")
    assert threading.active_count() < 100


def test_model_loaded_once_per_process(demo_server, client):
    generate(client, seed=9)
    generate(client, seed=10)
    assert demo_server[1].model_cache.loads == 1


def test_page_without_a_model_says_so():
    import gradio as gr

    from tta.demo.app import _page, build_demo
    from tta.demo.handlers import run_generate
    from tta.demo.models import ModelCache

    build_demo([])  # builds with the "no model" notice
    handler = _page(run_generate, ModelCache(), default=None)
    with pytest.raises(gr.Error, match="no trained default model yet"):
        handler(None, "a dog")
