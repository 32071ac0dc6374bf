"""The linear head on frozen features: multinomial logistic regression with L2, solved by L-BFGS (scipy).

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
from scipy.optimize import minimize  # imported here, not per solve: the first import takes ~1 s on 2 loaded cores

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
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per feature, the std floored at SD_FLOOR x its median: a feature that hardly varies in
    training would otherwise get a huge weight once the scaling is folded into the head, and amplify any noise
    it carries later (int8 rounding, a new camera)."""
    sd = x.std(0)
    return x.mean(0), np.maximum(sd, SD_FLOOR * float(np.median(sd)) + 1e-6)


def _sample_weights(y: np.ndarray, class_weights: np.ndarray | None) -> np.ndarray:
    """Per-row weights normalized to sum 1: the weighted mean of F.cross_entropy(weight=class_weights)."""
    w = np.ones(len(y)) if class_weights is None else np.asarray(class_weights, np.float64)[y]
    return w / w.sum()


def _solve(x: np.ndarray, y: np.ndarray, k: int, lam: float, class_weights: np.ndarray | None,
           init: tuple[np.ndarray, np.ndarray] | None = None, max_iter: int = FINAL_ITER
           ) -> tuple[np.ndarray, np.ndarray]:
    """(W [K, F], b [K]) minimizing weighted mean cross-entropy + lam/2 |W|^2 on standardized x [M, F] (float64).

    scipy's L-BFGS-B (Fortran) with the analytic gradient: one evaluation is two small matmuls, so a solve costs
    milliseconds where torch.optim.LBFGS spent most of its time in Python per step (the studio's 60-image head:
    8.4 s with torch at load 9, BENCHMARKS.md section 12)."""
    m, f = x.shape
    onehot = np.zeros((m, k))
    onehot[np.arange(m), y] = 1.0
    sw = _sample_weights(y, class_weights)[:, None]

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:k * f].reshape(k, f), theta[k * f:]
        z = x @ w.T + b
        z -= z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        g = sw * (np.exp(logp) - onehot)  # d loss / d logits
        loss = -float((sw * onehot * logp).sum()) + 0.5 * lam * float((w * w).sum())
        return loss, np.concatenate([(g.T @ x + lam * w).ravel(), g.sum(0)])

    theta0 = np.concatenate([init[0].ravel(), init[1]]) if init else np.zeros(k * f + k)
    res = minimize(loss_grad, theta0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "maxcor": 20, "gtol": 1e-6, "ftol": 1e-12})
    return res.x[:k * f].reshape(k, f), res.x[k * f:]


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


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
    cw = None if class_weights is None else np.asarray(class_weights, np.float64)
    scores: dict[float, list] = {lam: [0.0, 0, 0] for lam in LAMBDAS}  # loss sum, correct, count
    for f in range(FOLDS):
        train_rows, held_rows = sample[fold != f], sample[fold == f]
        if len(held_rows) == 0 or len(np.unique(labels[train_rows])) < 2:
            continue
        x, y = _stack(feats, train_rows, labels)
        mu, sd = _scale(x)
        xt = ((x - mu) / sd).astype(np.float64)
        xh = ((_eval_features(feats, views)[held_rows] - mu) / sd).astype(np.float64)
        yh = labels[held_rows]
        init = None
        for lam in LAMBDAS:
            init = _solve(xt, y, k, lam, cw, init, CV_ITER)
            logp = _log_softmax(xh @ init[0].T + init[1])
            scores[lam][0] += float(-logp[np.arange(len(yh)), yh].sum())
            scores[lam][1] += int((logp.argmax(1) == yh).sum())
            scores[lam][2] += len(yh)
    table = {lam: (s[0] / max(1, s[2]), s[1] / max(1, s[2])) for lam, s in scores.items()}
    if not any(s[2] for s in scores.values()):
        return 1e-2, table  # too few images to cross-validate: a middle value
    return min(LAMBDAS, key=lambda lam: table[lam][0]), table


def train_head(feats: np.ndarray, labels: np.ndarray, num_classes: int, *, views=None,
               class_weights: torch.Tensor | None = None, seed: int = 0, lam: float | None = None) -> LinearHead:
    """A linear head for features [V, N, F] (V views of N images) with labels [N]; lam: a fixed L2 strength
    (no cross-validation: one solve; cv_loss and cv_accuracy are then NaN), default chosen by CV."""
    t0 = time.perf_counter()
    labels = np.asarray(labels, np.int64)
    views = tuple(views) if views else None
    with _one_thread():
        if lam is None:
            lam, table = choose_lambda(feats, labels, num_classes, views, class_weights, seed)
        else:
            table = {}
        x, y = _stack(feats, np.arange(len(labels)), labels)
        mu, sd = _scale(x)
        cw = None if class_weights is None else np.asarray(class_weights, np.float64)
        w, b = _solve(((x - mu) / sd).astype(np.float64), y, num_classes, lam, cw)
    weight = w / sd  # W (x - mu) / sd + b = (W / sd) x + (b - (W / sd) mu)
    bias = b - weight @ mu
    loss, acc = table.get(lam, (float("nan"), float("nan")))
    info = {"lambda": lam, "cv_loss": round(loss, 4), "cv_accuracy": round(acc, 4),
            "seconds": round(time.perf_counter() - t0, 2)}
    return LinearHead(torch.from_numpy(weight).float(), torch.from_numpy(bias).float(), info)
