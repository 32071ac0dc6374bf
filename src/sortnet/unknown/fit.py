"""Fitting the unknown scorer after training: training features (a capped, stratified sample) -> scorer,
validation images of the known classes -> their scores -> threshold (threshold.py).

Features are the penultimate ones (SortnetModel.features), averaged over the model's test-time-augmentation
views exactly like the logits (the head is linear, so head(mean of views) = mean of the views' logits): the
Predictor, the exported graph and this fit all see the same numbers. A pretrained run passes its cached
features instead of computing them again.

Usage:
    feats, logits = features_and_logits(model, images_uint8, device, tta=tta)     # [N, D], [N, K]
    scorer, spec, val_scores = fit_unknown(model, bundle, tta, device, temperature=1.2)
    model.add_module("unknown", scorer); meta = meta.replace(unknown=spec)
"""
from __future__ import annotations

import numpy as np
import torch

from sortnet.device import autocast_context
from sortnet.tta import TTA, tta_views
from sortnet.unknown.scorer import DEFAULT_METHOD, MAX_BANK, UnknownScorer, fit_scorer, stratified_rows
from sortnet.unknown.threshold import DEFAULT_ACCEPT, threshold_entry

MAX_FIT_IMAGES = 4096  # training images whose features fit mahalanobis (knn keeps MAX_BANK of them)
BATCH = 256


def has_features(model) -> bool:
    """A SortnetModel (features + linear head); ensembles have no single feature space."""
    return callable(getattr(model, "features", None)) and isinstance(getattr(model, "head", None), torch.nn.Linear)


@torch.no_grad()
def features_and_logits(model, images, device, dtype=None, tta: TTA | None = None,
                        batch_size: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """(features float32 [N, D], logits float32 [N, K]) on the CPU, each averaged over the TTA views."""
    was_training = model.training
    model.eval()
    feats, logits = [], []
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(np.asarray(images[start : start + batch_size])).to(device).float()
        with autocast_context(device, dtype):
            f = torch.stack([model.features(v).float() for v in tta_views(x, tta)]).mean(0)
            out = model.head(f.to(model.head.weight.dtype)).float()
        feats.append(f.float().cpu())
        logits.append(out.cpu())
    model.train(was_training)
    if not feats:
        return torch.zeros(0, model.head.in_features), torch.zeros(0, model.head.out_features)
    return torch.cat(feats), torch.cat(logits)


def unknown_fit_images(cfg, n_train: int, n_val: int) -> int:
    """Images fit_unknown passes through the model after training (a training sample for the bank, and the
    validation split), for the time budget's planner: 0 with unknown_method "none"."""
    method = getattr(cfg, "unknown_method", "auto")
    if method == "none" or not n_val:
        return 0
    return min(n_train, fit_cap(DEFAULT_METHOD if method == "auto" else method)) + n_val


def fit_cap(method: str) -> int:
    """Training images whose features a method fits on (0: the logit scores need none)."""
    return MAX_FIT_IMAGES if "mahalanobis" in method else MAX_BANK if method.startswith("knn") else 0


def unknown_scores(scorer: UnknownScorer, feats, logits, batch_size: int = 1024) -> np.ndarray:
    """float64 [N] scores, in batches (knn compares each image with the whole bank)."""
    out = [scorer(torch.as_tensor(feats[i : i + batch_size]).float(), torch.as_tensor(logits[i : i + batch_size]))
           for i in range(0, len(feats), batch_size)]
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def fit_unknown(model, bundle, tta: TTA | None, device, dtype=None, temperature: float = 1.0,
                accept: float = DEFAULT_ACCEPT, method: str = DEFAULT_METHOD, features: dict | None = None,
                seed: int = 0) -> tuple[UnknownScorer, dict, np.ndarray] | None:
    """(scorer, ModelMeta.unknown entry, validation scores), or None without validation images or features.

    features: optional {"train": float [N_train, D], "val": float [N_val, D]} already computed (cached)."""
    val = bundle.val
    if val is None or not len(val) or not has_features(model):
        return None
    features = features or {}
    model = model.to(device)
    cap = fit_cap(method)
    train_feats, train_labels = np.zeros((0, model.head.in_features), np.float32), np.zeros(0, np.int64)
    if cap:
        rows = stratified_rows(bundle.train.labels, cap, seed)
        train_labels = bundle.train.labels[rows]
        if features.get("train") is not None:
            train_feats = np.asarray(features["train"])[rows]
        else:
            train_feats = features_and_logits(model, bundle.train.subset(rows).images, device, dtype, tta)[0].numpy()
    if features.get("val") is not None:
        val_feats = torch.as_tensor(np.asarray(features["val"]), dtype=torch.float32)
        val_logits = model.head.cpu().float()(val_feats).detach()
    else:
        val_feats, val_logits = features_and_logits(model, val.images, device, dtype, tta)
    model.cpu()
    # a combined method standardizes its components on these same validation images (scorer.standardize)
    scorer = fit_scorer(method, train_feats, train_labels, len(bundle.classes), temperature, seed=seed,
                        val=(val_feats, val_logits))
    scores = unknown_scores(scorer, val_feats, val_logits)
    spec = {"method": method, "dim": int(train_feats.shape[1] if cap else model.head.in_features),
            **({"bank": int(scorer.bank.shape[0]), "k": scorer.k} if method.startswith("knn") else {}),
            **threshold_entry(scores, accept)}
    return scorer, spec, scores
