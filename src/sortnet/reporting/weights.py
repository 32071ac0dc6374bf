"""What the weights look like: per-class pictures of a linear model, first-layer filters, first dense units.

- `linear`: logit_k = sum over pixels of w_k * normalize(x) + b_k, so w_k * scale (the Normalize
  factor 1 / (255 std)) is how much one step of a raw pixel (0..255) votes for class k. Summed over colour
  channels and drawn red (for) / blue (against), these are the MNIST team's class pictures.
- convolutional models: the first Conv2d whose input is the image (for WhitenedCNN the frozen 2x2
  whitening patches, eigenvectors of the data's patch covariance, strongest first, each with its negative).
- `mlp` and dense specs: the first Linear layer reading the flattened image, one picture per hidden unit.

Usage:
    pics = linear_class_pictures(model)          # float [K, H, W] or None if not a linear model
    name, w = first_layer_filters(model, 1)      # ("whiten", [O, C, kh, kw]) or None
    tiles = filter_tiles(w)                      # float RGB [O, kh, kw, 3] in 0..1
"""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from torch import nn

from sortnet.models.base import SortnetModel

DIVERGING = "RdBu_r"  # red = positive (votes for), blue = negative (votes against), white = 0


def linear_class_pictures(model: SortnetModel) -> np.ndarray | None:
    """[K, H, W] per-pixel vote of each class for a `linear` model (channels summed); None for other models."""
    if not isinstance(model.body, nn.Flatten):
        return None
    from sortnet.models.simple import linear_weight_images

    w = linear_weight_images(model).float()  # [K, C, H, W] weights on normalized pixels
    scale = model.normalize.scale.detach().float()  # [1, C, 1, 1]: normalized units per raw pixel step
    return (w * scale).sum(1).numpy() * 255.0  # logit change from black to white at that pixel


def linear_colour_pictures(model: SortnetModel) -> np.ndarray | None:
    """[K, H, W, 3] RGB version for colour `linear` models (0.5 = no vote); None for grey or non-linear models."""
    if not isinstance(model.body, nn.Flatten) or model.normalize.scale.shape[1] != 3:
        return None
    from sortnet.models.simple import linear_weight_images

    w = (linear_weight_images(model).float() * model.normalize.scale.float()).numpy()  # [K, 3, H, W]
    limit = np.abs(w).max(axis=(1, 2, 3), keepdims=True) + 1e-12
    return np.clip(0.5 + 0.5 * w / limit, 0, 1).transpose(0, 2, 3, 1)


def first_layer_filters(model: SortnetModel, in_channels: int) -> tuple[str, np.ndarray] | None:
    """(module name, weights [O, C, kh, kw]) of the first Conv2d reading the image's channels; None if none."""
    for name, m in model.body.named_modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == in_channels and m.groups == 1:
            return name, m.weight.detach().float().cpu().numpy()
    return None


def first_dense_units(model: SortnetModel, in_channels: int, img_size: int,
                      limit: int = 64) -> np.ndarray | None:
    """[U, H, W] first-layer weights of the first `limit` hidden units reading the raw image (mlp); else None."""
    pixels = in_channels * img_size * img_size
    for m in model.body.modules():
        if isinstance(m, nn.Conv2d):
            return None  # a conv reads the image first: the filters say more
        if isinstance(m, nn.Linear) and m.in_features == pixels:
            w = m.weight.detach().float().cpu().numpy()[:limit]
            return w.reshape(len(w), in_channels, img_size, img_size).sum(1)
    return None


def diverging_rgb(values: np.ndarray, limit: float | np.ndarray | None = None) -> np.ndarray:
    """float [..., H, W] -> RGB [..., H, W, 3]: red positive, blue negative, symmetric around 0.

    limit: the |value| drawn at full colour; a number, or an array broadcasting against values
    (e.g. [K, 1, 1] for each picture its own); default the largest |value|.
    """
    limit = np.abs(values).max() if limit is None else np.asarray(limit, np.float64)
    scaled = 0.5 + 0.5 * values / np.maximum(limit, 1e-12)
    return colormaps[DIVERGING](np.clip(scaled, 0, 1))[..., :3]


def filter_tiles(weights: np.ndarray) -> np.ndarray:
    """[O, C, kh, kw] -> RGB [O, kh, kw, 3] in 0..1, each filter scaled by its own largest |weight|.

    3 channels: shown as colours (0.5 grey = 0); 1 channel: the diverging red/blue map; other channel
    counts: the channel sum, diverging.
    """
    w = np.asarray(weights, np.float64)
    limit = np.abs(w).reshape(len(w), -1).max(axis=1).reshape(-1, 1, 1, 1) + 1e-12
    if w.shape[1] == 3:
        return np.clip(0.5 + 0.5 * w / limit, 0, 1).transpose(0, 2, 3, 1)
    summed = w.sum(axis=1)
    lim = np.abs(summed).reshape(len(w), -1).max(axis=1).reshape(-1, 1, 1) + 1e-12
    return diverging_rgb(summed / lim, 1.0)
