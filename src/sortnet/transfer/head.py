"""The linear head on frozen features: multinomial logistic regression with L2, solved by L-BFGS.

The L2 strength is chosen by 3-fold cross-validation on the training images (all views of one image
stay in one fold; held-out images scored on their orig+flip average, as the model file's TTA does),
by held-out log-loss, from LAMBDAS (strongest first, warm-started). Features are standardized for the
solver and the scaling folded back into (weight, bias), so the result is a plain nn.Linear on the
backbone's features: SortnetModel.head, nothing else to store.

Usage:
    head = train_head(train_feats, labels, num_classes=3)     # train_feats float32 [V, N, F]
    model.head.load_state_dict({"weight": head.weight, "bias": head.bias})
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

LAMBDAS = (1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4)  # L2 per sample (mean loss + lam/2 |W|^2), strongest first
FOLDS = 3
MAX_CV_IMAGES = 3000  # cross-validation on at most this many images (a stratified sample); the final fit uses all
CV_ITER, FINAL_ITER = 50, 150  # L-BFGS iterations: warm-started CV solves need fewer
SD_FLOOR = 0.1  # standardization never divides by less than this x the median feature std


@dataclass
class LinearHead:
    weight: torch.Tensor  # [K, F], applies to raw (unstandardized) features
    bias: torch.Tensor  # [K]
    info: dict = field(default_factory=dict)  # lambda, cv_loss, cv_accuracy, seconds


@contextlib.contextmanager
def _one_thread():
    """[~1000, 1280] matmuls are too small to share: a second thread only adds synchronization (the same head
    fit took 5.5 s on 1 thread, 14 s on 2, on a loaded 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per feature, the std floored at SD_FLOOR x its median: a feature that hardly varies in
    training would otherwise get a huge weight once the scaling is folded into the head, and amplify any noise
    it carries later (int8 rounding, a new camera)."""
    sd = x.std(0)
    return x.mean(0), np.maximum(sd, SD_FLOOR * float(np.median(sd)) + 1e-6)


def _solve(x: torch.Tensor, y: torch.Tensor, k: int, lam: float, class_weights: torch.Tensor | None,
           init: tuple[torch.Tensor, torch.Tensor] | None = None, max_iter: int = FINAL_ITER
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(W [K, F], b [K]) minimizing weighted mean cross-entropy + lam/2 |W|^2 on standardized x [M, F]."""
    w = (init[0].clone() if init else torch.zeros(k, x.shape[1])).requires_grad_(True)
    b = (init[1].clone() if init else torch.zeros(k)).requires_grad_(True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, tolerance_grad=1e-6, tolerance_change=1e-9,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y, weight=class_weights) + 0.5 * lam * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def _eval_features(feats: np.ndarray, views: tuple[str, ...] | None) -> np.ndarray:
    """[N, F]: the orig+flip average when both views are there (the TTA the model file uses), else view 0."""
    if views and "orig" in views and "flip" in views:
        return (feats[views.index("orig")] + feats[views.index("flip")]) / 2
    return feats[0]


def _folds(labels: np.ndarray, seed: int) -> np.ndarray:
    """Fold id per image, stratified by class."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        rows = rng.permutation(np.nonzero(labels == c)[0])
        fold[rows] = np.arange(len(rows)) % FOLDS
    return fold


def _stack(feats: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All views of `rows` as training samples: ([V * R, F], [V * R])."""
    return feats[:, rows].reshape(-1, feats.shape[2]), np.tile(labels[rows], feats.shape[0])


def choose_lambda(feats: np.ndarray, labels: np.ndarray, k: int, views, class_weights, seed: int = 0
                  ) -> tuple[float, dict]:
    """(best lambda, {lambda: (held-out log-loss, accuracy)}) by grouped, stratified k-fold CV."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(labels), MAX_CV_IMAGES, replace=False)) if len(labels) > MAX_CV_IMAGES \
        else np.arange(len(labels))
    fold = _folds(labels[sample], seed)
    scores: dict[float, list] = {lam: [0.0, 0, 0] for lam in LAMBDAS}  # loss sum, correct, count
    for f in range(FOLDS):
        train_rows, held_rows = sample[fold != f], sample[fold == f]
        if len(held_rows) == 0 or len(np.unique(labels[train_rows])) < 2:
            continue
        x, y = _stack(feats, train_rows, labels)
        mu, sd = _scale(x)
        xt, yt = torch.from_numpy((x - mu) / sd), torch.from_numpy(y)
        xh = torch.from_numpy((_eval_features(feats, views)[held_rows] - mu) / sd)
        yh = torch.from_numpy(labels[held_rows])
        init = None
        for lam in LAMBDAS:
            init = _solve(xt, yt, k, lam, class_weights, init, CV_ITER)
            logits = xh @ init[0].T + init[1]
            scores[lam][0] += float(F.cross_entropy(logits, yh, reduction="sum"))
            scores[lam][1] += int((logits.argmax(1) == yh).sum())
            scores[lam][2] += len(yh)
    table = {lam: (s[0] / max(1, s[2]), s[1] / max(1, s[2])) for lam, s in scores.items()}
    if not any(s[2] for s in scores.values()):
        return 1e-2, table  # too few images to cross-validate: a middle value
    return min(LAMBDAS, key=lambda lam: table[lam][0]), table


def train_head(feats: np.ndarray, labels: np.ndarray, num_classes: int, *, views=None,
               class_weights: torch.Tensor | None = None, seed: int = 0) -> LinearHead:
    """A linear head for features [V, N, F] (V views of N images) with labels [N]."""
    t0 = time.perf_counter()
    labels = np.asarray(labels, np.int64)
    views = tuple(views) if views else None
    with _one_thread():
        lam, table = choose_lambda(feats, labels, num_classes, views, class_weights, seed)
        x, y = _stack(feats, np.arange(len(labels)), labels)
        mu, sd = _scale(x)
        w, b = _solve(torch.from_numpy((x - mu) / sd), torch.from_numpy(y), num_classes, lam, class_weights)
    mu_t, sd_t = torch.from_numpy(mu), torch.from_numpy(sd)
    weight = w / sd_t  # W (x - mu) / sd + b = (W / sd) x + (b - (W / sd) mu)
    bias = b - weight @ mu_t
    loss, acc = table.get(lam, (float("nan"), float("nan")))
    info = {"lambda": lam, "cv_loss": round(loss, 4), "cv_accuracy": round(acc, 4),
            "seconds": round(time.perf_counter() - t0, 2)}
    return LinearHead(weight.float(), bias.float(), info)
