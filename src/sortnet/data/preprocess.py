"""How a decoded image becomes the model's input tensor; stored in the model file so predict == train.

Usage:
    prep = Preprocessing(img_size=28, channels=1, mean=(0.286,), std=(0.353,))
    arr = image_to_array(pil_image, prep)   # uint8 [C, H, W]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

RESIZE_MODES = ("shorter_center_crop", "stretch")


@dataclass
class Preprocessing:
    """Pixel pipeline: decode -> channels -> resize -> uint8 [C, H, W]; the model normalizes inside.

    mean/std are per channel on the 0..1 scale; the model applies (x / 255 - mean) / std itself.
    """

    img_size: int  # square side, px
    channels: int  # 1 (grey) or 3 (RGB)
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.25,)
    resize: str = "shorter_center_crop"
    background: str | None = None  # "dark" | "light": typical border of training images (for --invert auto)
    # centre crop: the shorter side is scaled to img_size / crop, then the central img_size square is kept
    # (ImageNet-pretrained nets were evaluated so: 0.875 = 224 of 256); 1.0 keeps the whole shorter side
    crop: float = 1.0

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if not 0.2 <= float(self.crop) <= 1.0:
            raise ValueError(f"crop must be in [0.2, 1], got {self.crop}")
        self.crop = float(self.crop)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)

    def to_dict(self) -> dict:
        """JSON-ready (mean/std as lists), as stored in model files."""
        return dict(asdict(self), mean=list(self.mean), std=list(self.std))

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def convert_channels(img: Image.Image, channels: int) -> Image.Image:
    """A decoded RGB or L image converted to 1 (L) or 3 (RGB) channels."""
    want = "L" if channels == 1 else "RGB"
    return img if img.mode == want else img.convert(want)


def resize_image(img: Image.Image, size: int, mode: str = "shorter_center_crop", crop: float = 1.0) -> Image.Image:
    """Square size x size image: shorter side scaled to size / crop then centre-cropped, or stretched."""
    w, h = img.size
    if (w, h) == (size, size) and crop == 1.0:
        return img
    if mode == "stretch":
        return img.resize((size, size), Image.BILINEAR, reducing_gap=None)
    scale = size / crop / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def image_to_array(img: Image.Image, prep: Preprocessing) -> np.ndarray:
    """uint8 [C, H, W] model input for one decoded (RGB or L) image."""
    img = resize_image(convert_channels(img, prep.channels), prep.img_size, prep.resize, prep.crop)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)


def border_ring(images: np.ndarray) -> np.ndarray:
    """float32 [N, 2H + 2W - 4]: the outer 1-px ring of uint8 [N, C, H, W] images, channels averaged.

    The one definition of an image's background brightness: training records it ("dark"/"light"
    in Preprocessing.background) and `predict --invert auto` compares each input against it.
    """
    grey = images.astype(np.float32).mean(axis=1)  # [N, H, W]
    return np.concatenate([grey[:, 0, :], grey[:, -1, :], grey[:, 1:-1, 0], grey[:, 1:-1, -1]], axis=1)
