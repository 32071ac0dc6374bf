"""Calibration, measured and corrected: does a predicted probability of 0.9 mean right 90% of the time?

Measured: reliability bins and the expected calibration error (Guo et al. 2017): split the top-1 confidences
into equal-width bins over (0, 1]; ECE = sum over bins of (images in bin / all images) * |accuracy in bin -
mean confidence in bin|.

Corrected: temperature scaling (Guo et al. 2017): one scalar T > 0 so that softmax(logits / T) is calibrated.

T is fitted on the validation split after training by minimising the negative log-likelihood over log T
(a bounded golden-section search: NLL is smooth and unimodal in log T). T never changes the top class, so
accuracy is unchanged; T > 1 softens an over-confident model, T < 1 sharpens an under-confident one.
The result is stored in the model file (`ModelMeta.calibration`) and applied wherever probabilities are
shown or exported: the Predictor (predict, serve, camera, evaluate), the ONNX/TorchScript graph and
ensemble members.

Usage:
    cal = fit_calibration(val_logits, val_labels)       # {"temperature", "nll_before", "nll_after", "ece_before", ...}
    probs = calibrated_probs(logits, temperature_of(meta))
    ece = expected_calibration_error(y_true, probs)       # in [0, 1]; 0 = perfectly calibrated
    bins = reliability_bins(y_true, probs)                # per bin: count, accuracy, confidence
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

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

LOG_T_RANGE = (math.log(0.5), math.log(20.0))  # T in 0.5..20: a small val set that is all right would drive T to 0
SEARCH_STEPS = 60  # golden-section steps: the bracket shrinks 0.618^60 -> |d log T| < 1e-11


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of labels [N] under softmax(logits [N, K] / temperature)."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    return float(torch.nn.functional.cross_entropy(logits / temperature, labels))


def fit_temperature(logits, labels) -> float:
    """The T minimising validation NLL (1.0 for fewer than 2 images: nothing to fit)."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if len(labels) < 2 or logits.shape[1] < 2:
        return 1.0
    lo, hi = LOG_T_RANGE
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(SEARCH_STEPS):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(logits, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(logits, labels, math.exp(b))
    best = math.exp((lo + hi) / 2)
    return best if nll(logits, labels, best) <= nll(logits, labels, 1.0) else 1.0  # never worse than none


def calibrated_probs(logits, temperature: float = 1.0) -> np.ndarray:
    """float32 [N, K] softmax(logits / temperature)."""
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float32) / temperature, 1).numpy()


def fit_calibration(logits, labels, split: str = "val") -> dict:
    """The ModelMeta.calibration entry: T and the split's NLL and ECE (15 bins) before and after."""
    labels = np.asarray(labels)
    t = fit_temperature(logits, labels)
    return {"temperature": round(t, 6), "fitted_on": split, "images": int(len(labels)),
            "nll_before": round(nll(logits, labels), 6), "nll_after": round(nll(logits, labels, t), 6),
            "ece_before": round(expected_calibration_error(labels, calibrated_probs(logits)), 6),
            "ece_after": round(expected_calibration_error(labels, calibrated_probs(logits, t)), 6)}


def temperature_of(meta) -> float:
    """The model file's temperature (1.0 for files without one: probabilities as they always were)."""
    cal = getattr(meta, "calibration", None)
    return float(cal["temperature"]) if cal else 1.0
