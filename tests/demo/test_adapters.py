"""The demo's LoRA adapter dropdown: adapters found in a folder, applied per request through the model cache
(one setting at a time on the shared UNet), recorded in the settings and the CLI line."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.lora.test_adapter import _write
from tta.demo.app import NO_ADAPTER, _page, build_demo
from tta.demo.handlers import run_generate
from tta.demo.models import ModelCache, list_adapters
from tta.lora.apply import loaded_adapters

ARGS = ("a creature growls", "", 0.5, 2, 2.5, 4, 1)  # prompt, negative, duration, steps, guidance, seed, candidates


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, tta_model_dir):
    from tta.pipelines import TTAPipeline

    folder = tmp_path_factory.mktemp("adapters")
    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    a = _write(folder, pipe, 4, 7, "a.safetensors")
    b = _write(folder, pipe, 4, 8, "b.safetensors")
    (folder / "notes.safetensors").write_bytes(b"not an adapter")
    (folder / "readme.txt").write_text("x")
    return folder, str(a.resolve()), str(b.resolve())


def test_list_adapters_keeps_tta_adapters_only(adapters, tmp_path):
    folder, a, b = adapters
    assert list_adapters(folder) == [a, b]
    assert list_adapters(tmp_path) == [] and list_adapters(None) == []


def test_page_applies_the_chosen_adapter_per_request(adapters, tta_model_dir):
    _, a, _ = adapters
    cache = ModelCache()
    run = _page(run_generate, cache, default=str(tta_model_dir), inputs=len(ARGS))
    base, _, base_settings, base_cli = run(None, *ARGS)
    none, *_ = run(None, *ARGS, NO_ADAPTER, 1.0)
    zero, *_ = run(None, *ARGS, a, 0.0)
    lora, _, settings, cli = run(None, *ARGS, a, 0.5)
    again, *_ = run(None, *ARGS)  # back to no adapter
    assert np.array_equal(base[1], none[1]) and np.array_equal(base[1], zero[1]) and np.array_equal(base[1], again[1])
    assert np.abs(lora[1].astype(np.float64) - base[1]).max() > 0
    assert "lora" not in base_settings and "--lora" not in base_cli
    assert [(e["path"], e["scale"]) for e in settings["lora"]] == [(a, 0.5)]
    assert f"--lora {a}:0.5" in cli
    assert cache.loads == 1


def test_cache_never_runs_two_adapter_settings_at_once(adapters, tta_model_dir):
    _, a, b = adapters
    cache = ModelCache()
    seen, errors = [], []

    def request(lora):
        try:
            with cache.use(str(tta_model_dir), lora) as pipe:
                state = [e["path"] for e in loaded_adapters(pipe)]
                seen.append(("start", lora, state))
                time.sleep(0.05)
                assert [e["path"] for e in loaded_adapters(pipe)] == state  # nobody switched it meanwhile
                seen.append(("end", lora, state))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=request, args=(x,)) for x in (a, b, None, a, b, None)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(state == ([lora] if lora else []) for _, lora, state in seen)
    running: dict = {}
    for event, lora, _ in seen:
        if event == "start":
            assert all(other == lora for other, n in running.items() if n)
        running[lora] = running.get(lora, 0) + (1 if event == "start" else -1)


def test_page_builds_with_and_without_adapters(adapters):
    folder, a, b = adapters
    build_demo([], adapters=[a, b])
    build_demo([])
