"""UnknownScorer: (penultimate features, logits) -> unknown_score per image; higher = less like the known classes.

Methods (candidates from the literature; the default is chosen by measurement, see DEFAULT_METHOD):
  msp          1 - max softmax(logits / T)                      Hendrycks & Gimpel 2017 (T: the calibration's)
  energy       -logsumexp(logits)                               Liu et al. 2020 (energy temperature 1)
  mahalanobis  min over classes of (f - mu_c)' P (f - mu_c)     Lee et al. 2018 (shared covariance, shrunk)
  knn          1 - cosine similarity to the k-th nearest of a   Sun et al. 2022
               bank of L2-normalized training features
  knn+msp      z(knn) + z(msp), each component standardized     in the spirit of ViM (Wang et al. CVPR 2022:
  knn+energy   z(knn) + z(energy)  (mean/std on the known       a feature-space score plus a logit score, scaled
               validation images)                                to be comparable, then summed)
  knn+mahalanobis  z(knn) + z(mahalanobis): two feature-space scores, one local (the k-th neighbour), one global
               (distance to the class means): the same standardized sum
The module is attached to a SortnetModel as submodule `unknown` (modelfile.model_from_meta does it from the
metadata), so its tensors travel in the model file as `unknown.means`, `unknown.precision` or `unknown.bank`
(float16: cosine similarities need no more) and the exported graph computes the same score. A combined method
also stores `unknown.center` and `unknown.scale` [2]: each component's mean and standard deviation on the known
validation images, so neither component dominates by its units (msp is in 0..1, knn in 0..2, energy unbounded).

Usage:
    scorer = fit_scorer("knn", train_feats, train_labels, num_classes=10)
    scorer = fit_scorer("knn+msp", train_feats, train_labels, 10, val=(val_feats, val_logits))  # standardized
    scores = scorer(features, logits)                # [B]
    scorer = scorer_from_spec(meta.unknown, num_classes, temperature)   # empty tensors of the stored shapes
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

METHODS = ("msp", "energy", "mahalanobis", "knn", "knn+msp", "knn+energy", "knn+mahalanobis")
COMBINED = {"knn+msp": ("knn", "msp"), "knn+energy": ("knn", "energy"),  # method -> its components
            "knn+mahalanobis": ("knn", "mahalanobis")}
# Chosen by benchmarks/bench_unknown.py. Section 17 of BENCHMARKS.md chose knn: on photos with a pretrained backbone
# knn had AUROC 0.998 against 0.518 for msp/energy (a two-class head is confidently wrong on a cat), but on
# Fashion-MNIST with one class held out it was 0.009 below msp in mean AUROC (chance on held-out footwear).
# Section 20 measured the combined scores on the same models: Fashion-MNIST mean AUROC knn+mahalanobis 0.757,
# knn+energy 0.765, energy 0.753, knn+msp 0.739, mahalanobis 0.739, msp 0.726, knn 0.722; photos: knn+mahalanobis
# AUROC 0.998 with 99 % of other photos rejected, while knn+energy / knn+msp fell to 76 % / 61 % rejected (their
# softmax half is at chance on photos). knn+mahalanobis is the one that beats msp AND keeps the photo result; its
# cost is the D x D float32 precision in the file (+6.5 MB for EfficientNet-Lite0's 1280 features).
DEFAULT_METHOD = "knn+mahalanobis"
MAX_BANK = 1024  # training feature vectors kept for knn (float16: 1024 x 1280 = 2.6 MB for EfficientNet-Lite0)
KNN_K = 5  # the k-th neighbour; Sun et al. scale k with the bank's share of the training set
SHRINK = 1e-2  # covariance + SHRINK * mean variance * I: invertible with fewer images than dimensions


class UnknownScorer(nn.Module):
    def __init__(self, method: str, num_classes: int, dim: int, temperature: float = 1.0, bank: int = 0,
                 k: int = KNN_K) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown-scorer method must be one of {', '.join(METHODS)}, got {method!r}")
        self.method, self.temperature, self.k = method, float(temperature), int(k)
        if "mahalanobis" in COMBINED.get(method, (method,)):
            self.register_buffer("means", torch.zeros(num_classes, dim))
            self.register_buffer("precision", torch.zeros(dim, dim))
        if method.startswith("knn"):
            self.register_buffer("bank", torch.zeros(bank, dim, dtype=torch.float16))
            self.k = max(1, min(int(k), bank))
        if method in COMBINED:  # z = (component - center) / scale, fitted on known validation images
            self.register_buffer("center", torch.zeros(len(COMBINED[method])))
            self.register_buffer("scale", torch.ones(len(COMBINED[method])))

    def forward(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if self.method in COMBINED:
            return ((self.components(features, logits) - self.center) / self.scale).sum(1)
        return self._score(self.method, features, logits)

    def components(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """[B, parts]: the raw (unstandardized) component scores of a combined method."""
        return torch.stack([self._score(part, features, logits) for part in COMBINED[self.method]], 1)

    def _score(self, method: str, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if method == "msp":
            return 1.0 - torch.softmax(logits.float() / self.temperature, 1).max(1).values
        if method == "energy":
            return -torch.logsumexp(logits.float(), 1)
        f = features.float()
        if method == "mahalanobis":
            # (f - mu_c) differenced first: the expanded f'Pf - 2f'P mu + mu'P mu cancels badly in float32
            # (torch and onnxruntime then differed by 0.1 in a standardized score). Cost B*C*D^2 flops.
            diff = f[:, None, :] - self.means[None]  # [B, C, D]
            d = ((diff @ self.precision) * diff).sum(2)
            return d.min(1).values / f.shape[1]  # per dimension: comparable numbers across models
        f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
        sims = f @ self.bank.float().T
        return 1.0 - torch.topk(sims, self.k, dim=1).values[:, -1]


def scorer_from_spec(spec: dict, num_classes: int, temperature: float = 1.0) -> UnknownScorer:
    """The scorer a model file's `unknown` metadata describes, with zero tensors of the stored shapes."""
    return UnknownScorer(spec["method"], num_classes, int(spec.get("dim", 0)), temperature,
                         bank=int(spec.get("bank", 0)), k=int(spec.get("k", KNN_K)))


def stratified_rows(labels: np.ndarray, cap: int, seed: int = 0) -> np.ndarray:
    """At most `cap` row indices, every class's share kept (at least one row per present class), sorted."""
    labels = np.asarray(labels)
    if len(labels) <= cap:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        take = max(1, round(cap * len(idx) / len(labels)))
        rows.append(rng.choice(idx, size=min(take, len(idx)), replace=False))
    return np.sort(np.concatenate(rows))  # rounding may keep a few rows over cap: at most one per class


def fit_scorer(method: str, feats: np.ndarray, labels: np.ndarray, num_classes: int, temperature: float = 1.0,
               max_bank: int = MAX_BANK, k: int = KNN_K, seed: int = 0, val=None) -> UnknownScorer:
    """A scorer fitted on training features float [N, D] with labels [N]; a combined method also needs
    val = (features [M, D], logits [M, K]) of known validation images to standardize its components."""
    feats = np.asarray(feats, np.float64)
    labels = np.asarray(labels, np.int64)
    n, dim = feats.shape
    if method.startswith("knn"):
        rows = stratified_rows(labels, max_bank, seed)
        scorer = UnknownScorer(method, num_classes, dim, temperature, bank=len(rows), k=k)
        bank = feats[rows] / np.maximum(np.linalg.norm(feats[rows], axis=1, keepdims=True), 1e-12)
        scorer.bank.copy_(torch.from_numpy(bank).to(torch.float16))
    else:
        scorer = UnknownScorer(method, num_classes, dim, temperature)
    if "mahalanobis" in COMBINED.get(method, (method,)):
        means = np.zeros((num_classes, dim))
        present = np.unique(labels)
        for c in present:
            means[c] = feats[labels == c].mean(0)
        for c in set(range(num_classes)) - set(present.tolist()):  # never happens after a split; stay finite
            means[c] = feats.mean(0)
        centred = feats - means[labels]
        cov = centred.T @ centred / max(1, n)
        cov += SHRINK * max(float(np.trace(cov)) / dim, 1e-12) * np.eye(dim)
        scorer.means.copy_(torch.from_numpy(means).float())
        scorer.precision.copy_(torch.from_numpy(np.linalg.inv(cov)).float())
    if method in COMBINED:
        standardize(scorer, *(val or (None, None)))
    return scorer


@torch.no_grad()
def standardize(scorer: UnknownScorer, val_feats, val_logits) -> UnknownScorer:
    """Set a combined scorer's center/scale to its components' mean/std on known validation images."""
    if val_feats is None or not len(val_feats):
        raise ValueError(f"{scorer.method} needs validation features to standardize its components")
    parts = scorer.components(torch.as_tensor(val_feats).float(), torch.as_tensor(val_logits).float()).double()
    scorer.center.copy_(parts.mean(0).float())
    scorer.scale.copy_(parts.std(0).clamp_min(1e-6).float())  # a constant component adds nothing, not NaN
    return scorer
