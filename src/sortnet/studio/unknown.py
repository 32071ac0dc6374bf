"""The studio model's "none of these" scorer: knn on the cached backbone features, one the page can compute.

The default scorer of `sortnet train` (knn+mahalanobis, sortnet/unknown/scorer.py) needs a 1280 x 1280 precision
matrix and standardization on a validation split; the studio trains on every image and runs the model in the
page, so it stores the plain "knn" method instead: 1 - cosine similarity of the image's (orig+flip averaged)
features to the k-th nearest of a bank of at most MAX_BANK L2-normalized training features. The bank travels to
the page as float32 (bank_bytes) and the page computes the same score (assets/infer.js), so the page,
`sortnet predict` and `sortnet serve` on the studio's model file say "unknown" on the same images.

The threshold is set out of fold: each class's images are cut into FOLDS contiguous blocks (in file order: a
webcam burst's frames are 100 ms apart and nearly identical, so interleaved folds would score each image
against its own twin and set the threshold far below a new frame's score); each block is scored against a bank
of the other blocks, and the threshold is the 95 % quantile of those scores (sortnet/unknown/threshold.py).

Usage:
    scorer, spec = fit_studio_unknown(feats, labels, num_classes)   # feats float32 [2, N, F] (orig, flip)
    model.add_module("unknown", scorer); meta = meta.replace(unknown=spec)
    page_bytes = bank_bytes(scorer)                                 # float32 [bank, F], row-major
"""
from __future__ import annotations

import numpy as np

from sortnet.unknown.fit import unknown_scores
from sortnet.unknown.scorer import KNN_K, MAX_BANK, UnknownScorer, fit_scorer
from sortnet.unknown.threshold import DEFAULT_ACCEPT, threshold_entry

METHOD = "knn"
FOLDS = 3


def block_folds(labels: np.ndarray, folds: int = FOLDS) -> np.ndarray:
    """Fold id per image: each class's images (in their order) cut into `folds` contiguous blocks."""
    fold = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        fold[rows] = np.arange(len(rows)) * folds // len(rows)
    return fold


def out_of_fold_scores(avg: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float64 [N]: each image's knn score against a bank fitted without its block."""
    fold = block_folds(labels)
    scores = np.zeros(len(labels))
    for f in np.unique(fold):
        held, rest = fold == f, fold != f
        if not rest.any():  # one image in all: nothing to compare with; it counts as far from everything
            scores[held] = 2.0
            continue
        scorer = fit_scorer(METHOD, avg[rest], labels[rest], num_classes)
        scores[held] = unknown_scores(scorer, avg[held], np.zeros((int(held.sum()), num_classes), np.float32))
    return scores


def fit_studio_unknown(feats: np.ndarray, labels: np.ndarray, num_classes: int, accept: float = DEFAULT_ACCEPT
                       ) -> tuple[UnknownScorer, dict]:
    """(knn scorer on every image, ModelMeta.unknown entry with the out-of-fold threshold).
    feats: float32 [2, N, F] (orig, flip), averaged like the model file's flip TTA."""
    avg = np.asarray(feats, np.float32).mean(0)
    labels = np.asarray(labels, np.int64)
    scorer = fit_scorer(METHOD, avg, labels, num_classes, max_bank=MAX_BANK, k=KNN_K)
    spec = {"method": METHOD, "dim": int(avg.shape[1]), "bank": int(scorer.bank.shape[0]), "k": scorer.k,
            **threshold_entry(out_of_fold_scores(avg, labels, num_classes), accept)}
    return scorer, spec


def bank_bytes(scorer: UnknownScorer) -> bytes:
    """The bank as the page reads it: little-endian float32 [bank, dim], the float16 values of the model file."""
    return scorer.bank.float().numpy().astype("<f4").tobytes()
