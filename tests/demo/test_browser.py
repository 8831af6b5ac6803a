"""A real browser on the served demo: headless Chromium (Debian's ``chromium``, driven by Playwright) types a
prompt, clicks Generate, and finds an ``<audio>`` of the requested duration and the spectrogram image.

CI: ``apt-get install -y chromium`` and ``pip install playwright`` (no browser download: the test drives
``/usr/bin/chromium``). The screenshot goes to the test's tmp folder and to ``$TTA_TEST_ARTIFACTS`` if set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)")

AUDIO_READY = """() => {
    const a = document.querySelector('#result-audio audio');
    return a !== null && isFinite(a.duration) && a.duration > 0;
}"""


@pytest.fixture
def page(demo_server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 1100})
        page.goto(demo_server[0])
        yield page
        browser.close()


def save_screenshot(page, tmp_path: Path, name: str, full_page: bool = True) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=full_page)
    artifacts = os.environ.get("TTA_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / name)
    return shot


def test_generate_in_the_browser(page, tmp_path):
    page.locator("#prompt textarea").fill("a dog barks in the rain")
    for slider, value in (("#duration", "2.5"), ("#steps", "3")):
        page.locator(f"{slider} input[type=number]").fill(value)
        page.locator(f"{slider} input[type=number]").press("Enter")
    page.locator("#generate").click()
    page.wait_for_function(AUDIO_READY, timeout=120_000)
    duration = page.evaluate("document.querySelector('#result-audio audio').duration")
    assert duration == pytest.approx(2.5, abs=0.01)
    size = page.evaluate("(() => { const i = document.querySelector('#spectrogram img'); "
                         "return [i.naturalWidth, i.naturalHeight]; })()")  # fmt: skip
    assert size == [250, 192]  # 100 frames/s x 2.5 s, 64 mel bins x 3 px
    assert (
        page.locator("#cli textarea")
        .input_value()
        .startswith("tta generate 'a dog barks in the rain' --duration 2.5 --steps 3")
    )
    shot = save_screenshot(page, tmp_path, "demo_generate.png")
    assert shot.stat().st_size > 10_000


def test_empty_prompt_shows_a_message_in_the_page(page, tmp_path):
    page.locator("#prompt textarea").fill("   ")
    page.locator("#generate").click()
    message = page.get_by_text("the prompt is empty: describe the sound you want").first
    message.wait_for(timeout=60_000)
    assert message.is_visible() and page.get_by_text("Traceback").count() == 0
    page.wait_for_timeout(1000)  # let the message finish fading in before the screenshot
    save_screenshot(page, tmp_path, "demo_empty_prompt.png", full_page=False)  # the message floats at the top
