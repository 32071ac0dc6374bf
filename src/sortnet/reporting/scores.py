"""The report's numbers: evaluation metrics plus balanced accuracy, calibration error and most-confused pairs.

Accuracy, top-5, per-class precision/recall/F1 and the confusion matrix come from
sortnet.evaluation.metrics (checked against scikit-learn); balanced accuracy is the mean recall over
the classes present in the data, as sklearn.metrics.balanced_accuracy_score.

Usage:
    s = report_scores(y_true, probs, classes)
    s["balanced_accuracy"], s["ece"], s["confused_pairs"][0]   # {"true": "Shirt", "predicted": "T-shirt", ...}
"""
from __future__ import annotations

import numpy as np

from sortnet.evaluation.metrics import compute_metrics
from sortnet.calibrate import reliability_bins


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean per-class recall over the classes that occur (rows of cm with any images)."""
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float((np.diag(cm)[present] / support[present]).mean())


def confused_pairs(cm: np.ndarray, classes: list[str], limit: int = 10) -> list[dict]:
    """Off-diagonal cells with the most images, largest first: true class mistaken for predicted class."""
    cm = np.asarray(cm, dtype=np.int64)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    rows, cols = np.nonzero(off)
    order = np.lexsort((cols, rows, -off[rows, cols]))[:limit]  # count desc, then class order (stable ties)
    support = cm.sum(axis=1)
    return [{"true": classes[rows[i]], "predicted": classes[cols[i]], "count": int(off[rows[i], cols[i]]),
             "fraction_of_true": float(off[rows[i], cols[i]] / support[rows[i]])} for i in order]


def report_scores(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict:
    m = compute_metrics(y_true, probs, classes)
    cm = np.array(m["confusion_matrix"], dtype=np.int64).reshape(len(classes), len(classes))
    m["balanced_accuracy"] = balanced_accuracy(cm)
    m["ece"] = reliability_bins(y_true, probs).ece
    m["confused_pairs"] = confused_pairs(cm, classes)
    return m
