"""`sortnet report` end to end on tiny generated data: the report written by `train`, every section's content,
the CLI verb, TensorBoard images, HTML escaping, and the page in real Chromium (images load, nothing is fetched
from the network, a screenshot is saved).

A `linear` model trained on white shapes (bars, disc, diagonal) on a dark background must learn weight
pictures that look like the shapes: each class's picture correlates with that class's mean image (centred
on the mean of all classes), which random weights do not.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sortnet
from clirun import run_cli
from conftest import _shape_mask, make_class_folder
from modelkit import make_model_file
from sortnet.modelfile import load_model
from sortnet.reporting import IMAGES_DIR, REPORT_FILE
from sortnet.reporting.dreams import class_dreams
from sortnet.reporting.weights import linear_class_pictures

SHAPES = {"hbar": 0, "vbar": 1, "disc": 2, "diagonal": 4}  # conftest shape kinds
SIZE = 16
CHROMIUM = "/usr/bin/chromium"
SECTIONS = ["summary", "curves", "metrics", "confusion", "top-losses", "learned", "samples", "unknown"]


def make_shapes(root: Path, per_class: int, seed: int = 0) -> Path:
    """root/{train,test}/<shape>/*.png: one white shape per class on dark grey, jittered, with noise."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", per_class // 4)):
        for name, kind in SHAPES.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.where(_shape_mask(kind, SIZE, rng), 200.0, 30.0) + rng.normal(0, 12, (SIZE, SIZE))
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / split / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, run folder) of a `linear` model trained by sortnet.train (which writes the report)."""
    base = tmp_path_factory.mktemp("report")
    data = make_shapes(base / "shapes", per_class=60)
    sortnet.train(str(data), model="linear", epochs=8, batch_size=16, lr=0.01, out=str(base / "run"),
                  progress=False)
    return data, base / "run"


def _class_means(data: Path, classes: list[str]) -> np.ndarray:
    return np.stack([np.mean([np.asarray(Image.open(f), np.float64) for f in sorted((data / "train" / c).glob("*"))],
                             axis=0) for c in classes])


def _correlations(pictures: np.ndarray, means: np.ndarray) -> np.ndarray:
    """[K, K] Pearson correlation of picture i with centred class mean j."""
    centred = means - means.mean(0)
    return np.array([[np.corrcoef(p.ravel(), m.ravel())[0, 1] for m in centred] for p in pictures])


def test_linear_weight_pictures_show_the_class_shapes(linear_run):
    data, run = linear_run
    model, meta = load_model(run / "model.safetensors")
    means = _class_means(data, meta.classes)
    corr = _correlations(linear_class_pictures(model), means)
    assert np.all(corr.argmax(1) == np.arange(len(corr))), corr  # each picture looks most like its own class
    assert corr.diagonal().min() > 0.2 and corr.diagonal().mean() > 0.3, corr
    torch.manual_seed(0)
    torch.nn.init.normal_(model.head.weight, std=float(model.head.weight.detach().std()))  # same scale, random
    random_corr = _correlations(linear_class_pictures(model), means)
    assert abs(random_corr.diagonal().mean()) < 0.15, random_corr


def test_dreams_of_the_trained_model_are_their_classes(linear_run):
    _, run = linear_run
    model, meta = load_model(run / "model.safetensors")
    p = meta.preprocessing
    dream = class_dreams(model, p.mean, p.std, steps=60, seconds=30, img_size=SIZE, channels=1, progress=False)
    with torch.no_grad():
        probs = torch.softmax(model(torch.as_tensor(dream.images).float()), 1).numpy()
    assert np.array_equal(probs.argmax(1), np.arange(len(SHAPES)))
    assert np.allclose(dream.probabilities, probs.diagonal(), atol=1e-5) and dream.probabilities.min() > 0.5


def test_train_writes_the_report_and_tensorboard_images(linear_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run = linear_run
    page = (run / REPORT_FILE).read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page
    pngs = {p.stem for p in (run / IMAGES_DIR).glob("*.png")}
    assert {"curves", "reliability", "confusion_counts", "confusion_normalized", "weights_linear", "dreams",
            "samples"} <= pngs
    assert page.count('src="data:image/png;base64,') == len(pngs)
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"report/curves", "report/confusion_matrix", "report/confusion_matrix_normalized"} <= set(
        events.Tags()["images"])


def test_report_cli_summary_numbers(linear_run, tmp_path):
    data, run = linear_run
    out = tmp_path / "rep"
    proc = run_cli("report", run / "model.safetensors", data, "--out", out, "--dream-steps", "20", "--no-progress")
    assert f"wrote {out / REPORT_FILE}" in proc.stdout
    page = (out / REPORT_FILE).read_text()
    k, pixels = len(SHAPES), SIZE * SIZE
    assert f"<td>parameters</td><td>{k * pixels + k:,} ({k * pixels + k:,} trainable)</td>" in page
    assert f"<td>FLOPs per image</td><td>{2 * k * pixels / 1e3:.3g}k" in page  # one [1, 256] x [256, 4] matmul
    size_mb = (run / "model.safetensors").stat().st_size / 1e6
    assert f"({size_mb:.2f} MB)" in page
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"<td>{metrics['test']['accuracy']:.4f}</td>" in page  # same images, same TTA: same accuracy as training
    for name in SHAPES:  # data check counts per split next to the evaluated counts (15 test, 60 train)
        assert re.search(rf"<td>{name}</td><td class=\"num\">15</td>(<td class=\"num\">\d+</td>)*", page)
    assert "<th>train (check)</th>" in page and "<th>test (check)</th>" in page


def test_report_escapes_class_names_and_draws_cnn_filters(tmp_path):
    names = ["<script>x", 'quote"d', "a&b"]  # folder names: anything but "/"
    data = make_class_folder(tmp_path, classes=3, per_class=6, size=16, class_names=names)
    model = make_model_file(tmp_path / "m.safetensors", "cnn-small", 3, 16, classes=names)
    path = sortnet.report(model, str(data), out=tmp_path / "out", dream_steps=5, progress=False)  # the Python API
    page = path.read_text()
    assert "<script" not in page and "&lt;script&gt;x" in page and "a&amp;b" in page and "quote&quot;d" in page
    assert (tmp_path / "out" / IMAGES_DIR / "first_layer_filters.png").is_file()
    assert "whitening filters" in page


def test_train_no_report_skips_it(tmp_path):
    data = make_class_folder(tmp_path, classes=2, per_class=8, size=8)
    run_cli("train", data, "--model", "linear", "--epochs", "1", "--no-report", "--no-progress", "--out",
            tmp_path / "run")
    assert (tmp_path / "run" / "model.safetensors").is_file() and not (tmp_path / "run" / REPORT_FILE).exists()


def test_serve_links_the_report_only_when_it_exists(linear_run):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from sortnet.infer.predictor import Predictor
    from sortnet.serve.app import create_app

    _, run = linear_run
    predictor = Predictor.from_file(run / "model.safetensors")
    with TestClient(create_app(predictor, report=run / REPORT_FILE)) as c:
        assert c.get("/model").json()["report"] == "report"
        r = c.get("/report")
        assert r.status_code == 200 and "sortnet report" in r.text
    with TestClient(create_app(predictor, report=run / "missing.html")) as c:
        assert c.get("/model").json()["report"] is None and c.get("/report").status_code == 404


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_report_in_chromium_loads_every_image_and_fetches_nothing(linear_run, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from test_browser import ARGS

    _, run = linear_run
    requests, blocked = [], []

    def guard(route):  # only the file itself and its inline data may load
        url = route.request.url
        if url.startswith(("file://", "data:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.route("**/*", guard)
            page.goto((run / REPORT_FILE).resolve().as_uri(), wait_until="load", timeout=20_000)
            widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
            ids = page.eval_on_selector_all("section", "s => s.map(x => x.id)")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            served_title = _serve_page_report_link(browser, run)
        finally:
            browser.close()
    assert ids == SECTIONS
    assert len(widths) == len(list((run / IMAGES_DIR).glob("*.png"))) and all(w > 0 for w in widths), widths
    assert not blocked and all(u.startswith(("file://", "data:")) for u in requests), requests
    assert Image.open(shot).size[0] == 1200 and shot.stat().st_size > 10_000
    assert served_title.startswith("sortnet report")


def _serve_page_report_link(browser, run: Path) -> str:
    """`sortnet serve`'s page for the run's model shows a report link; following it opens the report."""
    pytest.importorskip("fastapi")
    from modelkit import running_server

    from sortnet.infer.predictor import Predictor
    from sortnet.serve.app import create_app

    app = create_app(Predictor.from_file(run / "model.safetensors"), report=run / REPORT_FILE)
    with running_server(app) as url:
        page = browser.new_page()
        page.goto(url + "/", timeout=15_000)
        page.locator("#report-link").click(timeout=10_000)
        page.wait_for_url(url + "/report", timeout=10_000)
        return page.title()
