"""Calibration: does a predicted probability of 0.9 mean right 90% of the time? Reliability bins and ECE.

Expected calibration error (Guo et al. 2017): split the top-1 confidences into equal-width bins over
(0, 1]; ECE = sum over bins of (images in bin / all images) * |accuracy in bin - mean confidence in bin|.

Usage:
    bins = reliability_bins(y_true, probs, n_bins=15)   # per bin: count, accuracy, confidence
    ece = expected_calibration_error(y_true, probs)       # a number in [0, 1]; 0 = perfectly calibrated
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BINS = 15  # the usual choice in the calibration literature


@dataclass
class ReliabilityBins:
    edges: np.ndarray  # float [n_bins + 1], 0 .. 1
    count: np.ndarray  # int [n_bins] images whose top-1 confidence falls in the bin
    accuracy: np.ndarray  # float [n_bins] fraction correct (nan for empty bins)
    confidence: np.ndarray  # float [n_bins] mean top-1 confidence (nan for empty bins)

    @property
    def ece(self) -> float:
        total = self.count.sum()
        if total == 0:
            return float("nan")
        used = self.count > 0
        gaps = np.abs(self.accuracy[used] - self.confidence[used])
        return float((self.count[used] / total * gaps).sum())


def reliability_bins(y_true: np.ndarray, probs: np.ndarray, n_bins: int = N_BINS) -> ReliabilityBins:
    """Bin m holds confidences in ((m-1)/n_bins, m/n_bins]; a confidence of exactly 0 goes to the first bin."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    conf = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(axis=1) == y_true) if len(probs) else np.zeros(0, bool)
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(idx, weights=correct.astype(np.float64), minlength=n_bins) / count
        confidence = np.bincount(idx, weights=conf, minlength=n_bins) / count
    return ReliabilityBins(edges, count, accuracy, confidence)


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = N_BINS) -> float:
    return reliability_bins(y_true, probs, n_bins).ece
