"""Shared test fixtures: tiny, learnable image-folder datasets generated on the fly.

Usage (in any test module):
    from conftest import make_class_folder
    root = make_class_folder(tmp_path, classes=3, per_class=20, size=16, mode="RGB")
    # root/class_0/img_000.png ... ; or splits={"train": 20, "test": 5} for root/train/<class>/...

or the ready-made fixture `class_folder` (3 RGB classes x 20 images, 16 px).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))  # so tests can `from badfiles import ...` under any import mode

# Distinct RGB colours per class (cycled when there are more classes).
_COLOURS = [(230, 40, 40), (40, 200, 60), (50, 80, 230), (240, 220, 40), (200, 60, 220), (40, 220, 220),
            (250, 150, 30), (150, 150, 150), (120, 60, 20), (255, 255, 255)]


def _shape_mask(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean [size, size] mask of a class-specific shape, jittered by up to size/8 px."""
    yy, xx = np.mgrid[0:size, 0:size]
    j = max(1, size // 8)
    cy, cx = size / 2 + rng.integers(-j, j + 1), size / 2 + rng.integers(-j, j + 1)
    r = size / 4
    shapes = [
        np.abs(yy - cy) < r / 2,  # horizontal bar
        np.abs(xx - cx) < r / 2,  # vertical bar
        (yy - cy) ** 2 + (xx - cx) ** 2 < r**2,  # disc
        (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r),  # square
        np.abs((yy - cy) - (xx - cx)) < r / 2,  # diagonal
    ]
    return shapes[kind % len(shapes)]


def make_image(label: int, size: int = 16, mode: str = "RGB", rng: np.random.Generator | None = None,
               background: int = 30) -> Image.Image:
    """One learnable image of class `label`: a class shape in a class colour on a dark background, plus noise."""
    rng = rng if rng is not None else np.random.default_rng(label)
    colour = np.array(_COLOURS[label % len(_COLOURS)], np.float64)
    if label >= len(_COLOURS):  # more classes than colours: shape differs, shift brightness too
        colour = colour * (0.6 + 0.4 * ((label // len(_COLOURS)) % 2))
    img = np.full((size, size, 3), float(background))
    img[_shape_mask(label, size, rng)] = colour
    img += rng.normal(0, 12, img.shape)  # noise so the task is not trivial memorisation
    pil = Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8))
    return pil if mode == "RGB" else pil.convert(mode)


def make_class_folder(tmp_path: str | Path, classes: int = 3, per_class: int = 20, size: int = 16, mode: str = "RGB",
                      *, ext: str = "png", seed: int = 0, splits: dict[str, int] | None = None,
                      class_names: list[str] | None = None, name: str = "data") -> Path:
    """Write a small image-classification folder and return its root.

    Flat layout root/<class>/img_NNN.<ext> with `per_class` images each, or, when `splits` is given
    (e.g. {"train": 20, "val": 5, "test": 5}), root/<split>/<class>/... with that many per class.
    """
    root = Path(tmp_path) / name
    names = class_names or [f"class_{i}" for i in range(classes)]
    rng = np.random.default_rng(seed)
    layout = {"": per_class} if splits is None else splits
    for split, count in layout.items():
        for label, cname in enumerate(names):
            folder = root / split / cname if split else root / cname
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                make_image(label, size, mode, rng).save(folder / f"img_{i:03d}.{ext}")
    return root


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """A flat 3-class RGB folder, 20 images of 16 x 16 px per class."""
    return make_class_folder(tmp_path)


@pytest.fixture(autouse=True, scope="session")
def _own_sortnet_cache(tmp_path_factory):
    """Measured choices (memory layout, precision, step times) are remembered in $SORTNET_CACHE: tests keep
    theirs in a folder of their own, so they neither read the developer's nor leave fake timings behind."""
    before = os.environ.get("SORTNET_CACHE")
    os.environ["SORTNET_CACHE"] = str(tmp_path_factory.mktemp("sortnet-cache"))
    yield
    if before is None:
        os.environ.pop("SORTNET_CACHE", None)
    else:
        os.environ["SORTNET_CACHE"] = before
