"""MNIST-like digit images made here (no download): white ink on an exact-zero black background, 28 px.

Half the images are digits drawn with the fonts matplotlib ships (DejaVu, STIX, Computer Modern: always
installed with sortnet), half are scikit-learn's real handwritten 8x8 digits scaled to a 20 px box; both get
a random affine transform (rotation, shear, scale, shift) and a random stroke width, then are centred in a
28 px frame as MNIST is. Sparse images with exact zeros are what broke bf16 training (issue 24).

Usage:
    from digitlike import digit_images, write_digit_folder
    x, y = digit_images(2000, seed=0)                  # uint8 [N, 28, 28], int64 [N]
    root = write_digit_folder(tmp_path, per_class=50)  # root/<digit>/NNNN.png
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Italic.ttf",
              "DejaVuSansMono.ttf", "STIXGeneral.ttf", "STIXGeneralItalic.ttf", "cmr10.ttf", "cmss10.ttf",
              "cmtt10.ttf")


@lru_cache(maxsize=None)
def _fonts() -> list[ImageFont.FreeTypeFont]:
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return [ImageFont.truetype(str(folder / f), 40) for f in FONT_FILES if (folder / f).exists()]


@lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images * (255 / 16)).round().astype(np.uint8), d.target.astype(np.int64)


def _font_glyph(digit: int, rng: np.random.Generator) -> Image.Image:
    fonts = _fonts()
    img = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(img).text((32, 32), str(digit), fill=255, font=fonts[rng.integers(len(fonts))], anchor="mm")
    return img


def _handwritten_glyph(digit: int, rng: np.random.Generator) -> Image.Image:
    images, labels = _sklearn_digits()
    pick = rng.choice(np.flatnonzero(labels == digit))
    return Image.fromarray(images[pick]).resize((40, 40), Image.BILINEAR)


def _affine(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    angle = rng.uniform(-15, 15)
    img = img.rotate(angle, resample=Image.BILINEAR, expand=True)
    shear = rng.uniform(-0.25, 0.25)
    w, h = img.size
    img = img.transform((w, h), Image.AFFINE, (1, shear, -shear * h / 2, 0, 1, 0), resample=Image.BILINEAR)
    if rng.random() < 0.4:
        img = img.filter(ImageFilter.MaxFilter(3))  # a thicker pen
    return img


def _frame(img: Image.Image, rng: np.random.Generator) -> np.ndarray:
    """Fit the ink's bounding box in a 20 px box (scale jittered), centre it in 28 px, shift up to 2 px."""
    box = img.getbbox() or (0, 0, 1, 1)
    glyph = img.crop(box)
    side = 20 * rng.uniform(0.75, 1.0)
    scale = side / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.size[0] * scale)), max(1, round(glyph.size[1] * scale))),
                         Image.LANCZOS)
    canvas = Image.new("L", (28, 28), 0)
    dx, dy = rng.integers(-2, 3, size=2)
    canvas.paste(glyph, ((28 - glyph.size[0]) // 2 + int(dx), (28 - glyph.size[1]) // 2 + int(dy)))
    out = np.asarray(canvas, dtype=np.float64)
    out[out < 24] = 0  # resampling leaves faint grey: MNIST's background is exactly 0
    return np.clip(out * rng.uniform(1.0, 1.3), 0, 255).astype(np.uint8)


def digit_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n digit images, classes balanced: uint8 [n, 28, 28] (0 = background) and labels int64 [n]."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = np.empty((n, 28, 28), np.uint8)
    for i, digit in enumerate(labels):
        glyph = _font_glyph(digit, rng) if i % 2 == 0 else _handwritten_glyph(digit, rng)
        images[i] = _frame(_affine(glyph, rng), rng)
    return images, labels.astype(np.int64)


def write_digit_folder(tmp_path: str | Path, per_class: int = 50, seed: int = 0, name: str = "digits",
                       size: int = 28) -> Path:
    """root/<digit>/NNNN.png with per_class grey PNGs each (resized to `size` px when not 28); returns root."""
    root = Path(tmp_path) / name
    images, labels = digit_images(per_class * 10, seed)
    for i, (img, digit) in enumerate(zip(images, labels)):
        folder = root / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        pil = Image.fromarray(img)
        if size != 28:
            pil = pil.resize((size, size), Image.BILINEAR)
        pil.save(folder / f"{i:05d}.png")
    return root
