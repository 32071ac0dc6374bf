"""The unknown threshold: set on validation images of the known classes, stored with their score quantiles.

An image is unknown when its unknown_score is above the threshold. `--unknown-accept A` (default 0.95) sets the
threshold at the A-quantile of the validation scores, so a share A of known images is accepted; the model file
keeps QUANTILES quantiles of those scores so another A can be chosen at predict/serve time without the data.
`--unknown-threshold X` sets the score directly.

Usage:
    entry = threshold_entry(val_scores, accept=0.95)   # {"threshold", "accept", "accepted_val", "val_quantiles"...}
    t = choose_threshold(meta.unknown, accept=0.99)     # or threshold=..., or neither: the stored one
"""
from __future__ import annotations

import math

import numpy as np

from sortnet.errors import SortnetError

DEFAULT_ACCEPT = 0.95
QUANTILES = 201  # the validation scores at 0, 0.5, ..., 100 %: enough to move the threshold later


class UnknownSettingError(SortnetError):
    """--unknown-accept / --unknown-threshold outside what they allow."""


def check_accept(accept: float) -> float:
    if not (isinstance(accept, (int, float)) and 0.5 <= accept <= 1.0):
        raise UnknownSettingError(f"--unknown-accept must be a share of known images in 0.5..1 (e.g. 0.95), "
                                  f"got {accept!r}")
    return float(accept)


def threshold_entry(val_scores: np.ndarray, accept: float = DEFAULT_ACCEPT) -> dict:
    """The threshold fields of ModelMeta.unknown from validation scores of known-class images."""
    check_accept(accept)
    scores = np.asarray(val_scores, np.float64)
    qs = np.quantile(scores, np.linspace(0, 1, QUANTILES)) if len(scores) else np.zeros(QUANTILES)
    threshold = float(np.quantile(scores, accept, method="higher")) if len(scores) else math.inf
    return {"threshold": threshold, "accept": accept,
            "accepted_val": round(float((scores <= threshold).mean()), 6) if len(scores) else 1.0,
            "val_images": int(len(scores)), "val_quantiles": [round(float(q), 7) for q in qs]}


def choose_threshold(spec: dict | None, accept: float | None = None, threshold: float | None = None) -> float | None:
    """The threshold in use: `threshold` if given, else the `accept` quantile of the stored validation scores,
    else the stored one; None when the model has no scorer (it never says unknown)."""
    if spec is None:
        return None
    if threshold is not None:
        if not math.isfinite(threshold):
            raise UnknownSettingError(f"--unknown-threshold must be a finite number, got {threshold!r}")
        return float(threshold)
    if accept is None:
        return float(spec["threshold"])
    accept = check_accept(accept)
    qs = np.asarray(spec["val_quantiles"], np.float64)
    return float(np.interp(accept, np.linspace(0, 1, len(qs)), qs))
