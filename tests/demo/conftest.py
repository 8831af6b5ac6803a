"""The demo served on a free localhost port with the tiny model, once per session (Gradio imported lazily)."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def demo_server(tta_model_dir, tmp_path_factory):
    """``(url, demo, cache)`` of ``tta.demo.app.launch`` serving the tiny model (the default host: localhost)."""
    pytest.importorskip("gradio", reason="the demo needs Gradio: pip install 'tta[demo]'")
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio"))
    from tta.demo.app import launch

    port = free_port()
    demo = launch(port=port, model=str(tta_model_dir), block=False)
    yield f"http://127.0.0.1:{port}", demo
    demo.close()
