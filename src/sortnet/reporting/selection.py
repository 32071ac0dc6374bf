"""Which images the report shows: the most confidently wrong ones, and a few right and wrong per class.

Usage:
    idx = top_losses(y_true, probs, count=16)                 # indices, largest loss first
    picks = samples_per_class(y_true, probs, per_kind=3, seed=0)   # {class index: (correct idx, wrong idx)}
"""
from __future__ import annotations

import numpy as np


def image_losses(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Cross-entropy per image, -log p(true class), float64 [N]."""
    p_true = np.asarray(probs, np.float64)[np.arange(len(y_true)), np.asarray(y_true, np.int64)]
    return -np.log(np.clip(p_true, 1e-12, 1.0))


def top_losses(y_true: np.ndarray, probs: np.ndarray, count: int = 16) -> np.ndarray:
    """Indices of wrongly classified images with the highest loss (most confidently wrong first)."""
    wrong = np.flatnonzero(np.asarray(probs).argmax(axis=1) != np.asarray(y_true))
    if len(wrong) == 0:
        return wrong
    order = np.argsort(-image_losses(y_true[wrong], probs[wrong]), kind="stable")
    return wrong[order[:count]]


def samples_per_class(y_true: np.ndarray, probs: np.ndarray, per_kind: int = 3,
                      seed: int = 0) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For each class present: up to per_kind correctly and per_kind wrongly classified images, drawn at random."""
    rng = np.random.default_rng(seed)
    pred = np.asarray(probs).argmax(axis=1)

    def pick(ids: np.ndarray) -> np.ndarray:
        return np.sort(rng.choice(ids, size=min(per_kind, len(ids)), replace=False))

    out = {}
    for k in np.unique(y_true):
        mine = y_true == k
        out[int(k)] = (pick(np.flatnonzero(mine & (pred == k))), pick(np.flatnonzero(mine & (pred != k))))
    return out
