"""Confident learning (Northcutt, Jiang & Chuang, "Confident Learning", JAIR 2021) on out-of-fold probabilities.

Given P [N, K] (each row predicted by a model that did not train on it) and the given labels y [N]:
1. per-class thresholds t_j = mean of P[i, j] over the images labelled j (the model's self-confidence in j);
2. the confident joint C [K, K]: image i counts in C[y_i, j*] where j* is the most probable class among
   those whose probability reaches their threshold (images reaching none are not counted);
3. the estimated number of wrong labels: C's off-diagonal sum (estimate="off_diagonal", the default, as
   cleanlab's num_label_issues), or that of C calibrated so that row i sums to the number of images labelled
   i and the whole to N (estimate="off_diagonal_calibrated", the paper's Q). Measured (BENCHMARKS.md
   section 22): the calibrated count is 1.3-1.6x the uncalibrated one, because rescaling a row to its
   label count also scales up the model's own confusions; the uncalibrated count was nearer the true number
   on both photos and small grey images, so it is the default;
4. issues ("prune by noise rate"): for every off-diagonal cell (i, j) of the joint the estimate used, that
   many images labelled i with the largest margin P[j] - P[i] are flagged, with j as their suggested class
   (so the number flagged matches the estimate);
5. every image gets a label-quality score in [0, 1] (low = likely wrong): self-confidence P[i, y_i]
   (the paper's and cleanlab's default ranking) or the normalized margin (P[y] - max_{j != y} P[j] + 1) / 2.

Usage:
    cl = confident_learning(probs, labels, num_classes=3)      # ConfidentResult
    cl.flagged (bool [N]), cl.suggested (int [N]), cl.scores (float [N]), cl.estimated_errors, cl.order()
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCORE_METHODS = ("self_confidence", "normalized_margin")
ESTIMATES = ("off_diagonal", "off_diagonal_calibrated")
THRESHOLD_SLACK = 1e-6  # a probability equal to its class threshold counts as reaching it (float rounding)


@dataclass
class ConfidentResult:
    thresholds: np.ndarray  # [K] per-class self-confidence thresholds
    confident_joint: np.ndarray  # [K, K] int counts, rows = given label, columns = confident class
    calibrated_joint: np.ndarray  # [K, K] float, rows sum to the given-label counts
    estimated_errors: int  # off-diagonal sum of the joint `estimate` names
    estimated_errors_calibrated: int  # off-diagonal sum of the calibrated joint (the paper's Q x N), for comparison
    flagged: np.ndarray  # bool [N]: label issue by prune-by-noise-rate
    suggested: np.ndarray  # int64 [N]: the flagged cell's class, else the most probable other class
    scores: np.ndarray  # float [N] label quality, 0..1, low = likely wrong
    method: str
    estimate: str = "off_diagonal"

    def order(self) -> np.ndarray:
        """Row indices, most likely wrong first: ascending label-quality score (stable: ties keep row order)."""
        return np.argsort(self.scores, kind="stable")


def thresholds_of(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Mean predicted probability of class j over the images labelled j (1.0 for a class with none: unreachable)."""
    t = np.ones(k)
    for j in range(k):
        rows = labels == j
        if rows.any():
            t[j] = probs[rows, j].mean()
    return t


def confident_joint(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """C[i, j]: images labelled i whose most probable class among those above threshold is j."""
    k = probs.shape[1]
    above = probs >= thresholds[None, :] - THRESHOLD_SLACK
    counted = above.any(1)
    guess = np.where(above, probs, -1.0).argmax(1)
    joint = np.zeros((k, k), np.int64)
    np.add.at(joint, (labels[counted], guess[counted]), 1)
    return joint


def calibrate(joint: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows rescaled to the given-label counts; then the whole scaled to N (rows with no count stay 0)."""
    k = joint.shape[0]
    counts = np.bincount(labels, minlength=k).astype(float)
    rows = joint.sum(1, keepdims=True).astype(float)
    cal = np.divide(joint * counts[:, None], rows, out=np.zeros((k, k)), where=rows > 0)
    total = cal.sum()
    return cal * (counts.sum() / total) if total > 0 else cal


def label_quality(probs: np.ndarray, labels: np.ndarray, method: str = "self_confidence") -> np.ndarray:
    """Per-image score in [0, 1]: low = the given label is unlikely."""
    n = len(labels)
    given = probs[np.arange(n), labels]
    if method == "self_confidence":
        return given
    if method == "normalized_margin":
        others = probs.copy()
        others[np.arange(n), labels] = -np.inf
        return (given - others.max(1) + 1.0) / 2.0
    raise ValueError(f"score method must be one of {', '.join(SCORE_METHODS)}, got {method!r}")


def best_other(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The most probable class other than the given one."""
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return others.argmax(1)


def prune_by_noise_rate(probs: np.ndarray, labels: np.ndarray, cal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flagged bool [N], the cell's class for flagged rows, -1 elsewhere): for each off-diagonal cell (i, j),
    round(cal[i, j]) images labelled i with the largest P[j] - P[i], each image flagged once (largest margin wins)."""
    n, k = probs.shape
    flagged, cell = np.zeros(n, bool), np.full(n, -1, np.int64)
    candidates = []  # (margin, row, j)
    for i in range(k):
        rows = np.nonzero(labels == i)[0]
        for j in range(k):
            take = int(round(cal[i, j])) if i != j else 0
            if take <= 0 or len(rows) == 0:
                continue
            margin = probs[rows, j] - probs[rows, i]
            best = np.argsort(-margin, kind="stable")[:take]
            candidates += [(margin[b], rows[b], j) for b in best]
    for _, row, j in sorted(candidates, key=lambda c: -c[0]):
        if not flagged[row]:
            flagged[row], cell[row] = True, j
    return flagged, cell


def off_diagonal(joint: np.ndarray) -> int:
    return int(round(float(joint.sum() - np.trace(joint))))


def confident_learning(probs: np.ndarray, labels: np.ndarray, num_classes: int | None = None,
                       method: str = "self_confidence", estimate: str = "off_diagonal") -> ConfidentResult:
    """Confident learning on out-of-fold probabilities probs [N, K] (rows sum to 1) and given labels [N];
    estimate: "off_diagonal" (the confident joint as counted) or "off_diagonal_calibrated" (see the docstring)."""
    if estimate not in ESTIMATES:
        raise ValueError(f"estimate must be one of {', '.join(ESTIMATES)}, got {estimate!r}")
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64)
    k = num_classes or probs.shape[1]
    if probs.ndim != 2 or probs.shape != (len(labels), k):
        raise ValueError(f"probs must be [N, {k}] for {len(labels)} labels, got {probs.shape}")
    scores = label_quality(probs, labels, method)
    t = thresholds_of(probs, labels, k)
    joint = confident_joint(probs, labels, t)
    cal = calibrate(joint, labels)
    counts = cal if estimate == "off_diagonal_calibrated" else joint.astype(float)
    flagged, cell = prune_by_noise_rate(probs, labels, counts)
    suggested = np.where(flagged, cell, best_other(probs, labels))
    return ConfidentResult(thresholds=t, confident_joint=joint, calibrated_joint=cal,
                           estimated_errors=off_diagonal(counts), estimated_errors_calibrated=off_diagonal(cal),
                           flagged=flagged, suggested=suggested, scores=scores, method=method, estimate=estimate)
