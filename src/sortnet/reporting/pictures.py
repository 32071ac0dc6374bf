"""Image arrays for the report's galleries: uint8 model inputs -> RGB thumbnails, heat-map overlays.

Usage:
    rgb = thumbnails(images_uint8, size=84)      # float [N, 84, 84, 3] in 0..1
    over = heat_overlay(rgb, cams)               # Grad-CAM maps (float [N, H, W], 0..1) blended on top
"""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image

HEAT_MAP = "jet"  # the usual Grad-CAM colouring: blue = no evidence, red = strongest
HEAT_ALPHA = 0.45


def to_rgb(images: np.ndarray) -> np.ndarray:
    """uint8 [N, C, H, W] (C = 1 or 3) -> float [N, H, W, 3] in 0..1."""
    x = np.asarray(images, np.float32) / 255.0
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return x.transpose(0, 2, 3, 1)


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """float [N, H, W, 3] -> [N, size, size, 3]: integer nearest-neighbour upscale for small images
    (pixels stay crisp), bilinear for everything else."""
    n, h, w, _ = rgb.shape
    if h == size and w == size:
        return rgb
    if size % h == 0 and size % w == 0 and h == w:
        f = size // h
        return np.repeat(np.repeat(rgb, f, axis=1), f, axis=2)
    out = np.empty((n, size, size, 3), np.float32)
    for i, img in enumerate(rgb):
        pil = Image.fromarray(np.clip(np.round(img * 255), 0, 255).astype(np.uint8))
        out[i] = np.asarray(pil.resize((size, size), Image.BILINEAR), np.float32) / 255.0
    return out


def tile_size(img_size: int, target: int = 84) -> int:
    """Thumbnail side: a whole multiple of small images near `target` px, else `target`."""
    if img_size >= target:
        return target
    return img_size * max(1, round(target / img_size))


def thumbnails(images: np.ndarray, size: int | None = None) -> np.ndarray:
    """uint8 [N, C, H, W] -> float RGB [N, size, size, 3]."""
    rgb = to_rgb(images)
    return resize_rgb(rgb, size or tile_size(rgb.shape[1]))


def heat_overlay(rgb: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Blend heat maps float [N, h, w] (0..1, any size) over RGB [N, H, W, 3]."""
    size = rgb.shape[1]
    colour = colormaps[HEAT_MAP](np.clip(heat, 0, 1))[..., :3].astype(np.float32)  # [N, h, w, 3]
    colour = resize_rgb(colour, size)
    return (1 - HEAT_ALPHA) * rgb + HEAT_ALPHA * colour


def upscale_nearest(tiles: np.ndarray, min_size: int) -> np.ndarray:
    """RGB tiles [N, h, w, 3] enlarged by a whole factor so they are at least min_size px (filters, weights)."""
    f = max(1, int(np.ceil(min_size / max(tiles.shape[1], 1))))
    return np.repeat(np.repeat(tiles, f, axis=1), f, axis=2)
