"""Real-browser test of the `sortnet serve` page: Playwright drives Debian's Chromium, uploads an image,
and sees the predicted class name with its probability bars.

Needs the playwright Python package and /usr/bin/chromium (`apt-get install -y chromium`); skipped
otherwise. Never runs `playwright install`: the system Chromium is used.
"""
from __future__ import annotations

import os

import pytest

from conftest import make_image
from modelkit import FRUIT, make_model_file, running_server

CHROMIUM = "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("fastapi")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)", allow_module_level=True)

from sortnet.infer.predictor import Predictor  # noqa: E402
from sortnet.serve.app import create_app  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def test_page_upload_shows_predicted_class(tmp_path):
    predictor = Predictor.from_file(make_model_file(tmp_path / "model.safetensors", "cnn-small", 3, 16))
    img = make_image(2, 48)
    img_path = tmp_path / "cherry_photo.png"
    img.save(img_path)
    expected = predictor.predict_images([img], top_k=3)[0]
    assert expected.label in FRUIT
    with running_server(create_app(predictor)) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/", timeout=15_000)
            page.wait_for_function("document.getElementById('info').textContent.includes('3 classes')",
                                   timeout=10_000)
            page.set_input_files("#picker", str(img_path))
            card = page.locator(".card.result").first
            card.locator(".row").first.wait_for(timeout=15_000)
            names = card.locator(".name").all_text_contents()
            assert names == [c for c, _ in expected.top]
            assert card.get_attribute("data-label") == expected.label
            pct = card.locator(".pct").first.text_content()
            assert pct == f"{100 * expected.top[0][1]:.1f}%"
            # the camera tab exists and fails politely without a camera (headless has none)
            page.click("#tab-camera")
            assert page.locator("#cam-start").is_visible()
            assert not errors, errors
        finally:
            browser.close()
