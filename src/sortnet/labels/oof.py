"""Out-of-fold probabilities: every image predicted by a model that did not train on it (stratified k-fold).

Two paths, chosen by what `sortnet.prepare` picks for the data (the same model `sortnet train` would train):
- pretrained backbone (photos): frozen features of every image (orig + flip, read from or written to the
  feature cache, sortnet/transfer/featcache.py) once; then per fold the linear head (transfer/head.py) is
  fitted on the other folds' features and scores the held-out fold. Seconds after the features exist.
- anything else (small images: the whitened CNN): per fold one `sortnet.fit` on the other folds within an
  equal share of the time budget, then the held-out fold's probabilities (with the model's TTA).
Every split of the folder (train/, val/, test/) is pooled: a wrong label anywhere is worth finding.
The probabilities are the models' own softmax, NOT temperature-scaled: calibrate_out_of_fold (per fold, a
temperature fitted on the other folds' out-of-fold logits) was measured before confident learning and made
the estimate worse on small grey images (1.49x -> 1.65x the true count at accuracy 0.82, 6.1x -> 11.4x at
0.37) and no better on photos (BENCHMARKS.md section 22): the per-class thresholds already absorb a model's
overall over- or under-confidence. benchmarks/bench_labels.py reports both side by side.

Usage:
    oof = out_of_fold("photos/", folds=5, seed=0, time_budget=120)    # OutOfFold
    oof.probs [N, K], oof.labels [N], oof.paths, oof.classes, oof.info
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from sortnet.config import ConfigError
from sortnet.data.dataset import DataBundle, ImageSet

DEFAULT_FOLDS = 5
MIN_FOLDS = 2
BUDGET_PER_IMAGE_S = 0.025  # from-scratch path, no time_budget given: 25 ms per image (10k images: 250 s) ...
BUDGET_MIN_S, BUDGET_MAX_S = 60.0, 600.0  # ... kept within these bounds
MIN_FOLD_S = 1.0  # a fold's fit never gets less (seconds)
FOLD_OVERHEAD = 0.9  # share of a fold's slice given to fit's own budget (the rest: predicting the held-out rows)


@dataclass
class OutOfFold:
    probs: np.ndarray  # float32 [N, K]; row i from the fold model that did not see image i (softmax of logits)
    labels: np.ndarray  # int64 [N] given labels
    paths: list[str]  # absolute (or as listed) path of each row
    classes: list[str]
    folds: np.ndarray  # int64 [N] fold of each row
    info: dict = field(default_factory=dict)  # path ("pretrained features" | "from scratch"), model, seconds, ...
    logits: np.ndarray | None = None  # float32 [N, K]: probs = softmax(logits); calibrate_out_of_fold takes these


def fold_ids(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold id per row, stratified: each class's rows shuffled (seeded) and dealt round-robin."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(labels), np.int64)
    start = 0
    for c in np.unique(labels):
        rows = rng.permutation(np.nonzero(labels == c)[0])
        out[rows] = (np.arange(len(rows)) + start) % folds  # offsets keep small classes from all landing in fold 0
        start += len(rows)
    return out


def pooled(bundle: DataBundle) -> ImageSet:
    """train + val + test of a bundle as one set (labels index bundle.classes in every split)."""
    sets = [s for s in (bundle.train, bundle.val, bundle.test) if s is not None and len(s)]
    if len(sets) == 1:
        return sets[0]
    paths = None if any(s.paths is None for s in sets) else [p for s in sets for p in s.paths]
    return ImageSet(images=np.concatenate([np.asarray(s.images) for s in sets]),
                    labels=np.concatenate([s.labels for s in sets]), classes=bundle.classes, paths=paths)


def cross_fitted_temperatures(logits: np.ndarray, labels: np.ndarray, fold: np.ndarray) -> dict[int, float]:
    """{fold: T}: fold f's temperature minimises the NLL of the other folds' out-of-fold logits (each row there was
    predicted by a model that did not train on it, as fold f's rows are), so fold f's labels never set it."""
    from sortnet.calibrate import fit_temperature

    return {int(f): fit_temperature(logits[fold != f], labels[fold != f]) for f in np.unique(fold)}


def calibrate_out_of_fold(logits: np.ndarray, labels: np.ndarray, fold: np.ndarray) -> tuple[np.ndarray, dict]:
    """float32 [N, K] softmax(logits / T of the row's fold) and info (temperatures, NLL and ECE before/after).
    Not applied by out_of_fold (see the module docstring); the benchmark measures confident learning on both."""
    from sortnet.calibrate import calibrated_probs, expected_calibration_error, nll

    temps = cross_fitted_temperatures(logits, labels, fold)
    scale = np.array([temps[int(f)] for f in fold], np.float32)[:, None]
    probs = calibrated_probs(logits / scale)
    info = {"temperatures": {str(f): round(t, 4) for f, t in temps.items()},
            "nll_before": round(nll(logits, labels), 4), "nll_after": round(nll(logits / scale, labels), 4),
            "ece_before": round(expected_calibration_error(labels, calibrated_probs(logits)), 4),
            "ece_after": round(expected_calibration_error(labels, probs), 4)}
    return probs, info


def _check_folds(labels: np.ndarray, folds: int) -> None:
    if folds < MIN_FOLDS:
        raise ConfigError(f"folds must be >= {MIN_FOLDS}, got {folds}")
    if len(labels) < folds:
        raise ConfigError(f"{len(labels)} images cannot be split into {folds} folds; use fewer folds")


def _pretrained_features(bundle: DataBundle, progress: bool, seed: int, device) -> tuple[np.ndarray, str]:
    """float32 [2, N, F] (orig, flip) features of train, val and test pooled (in that order); the backbone name."""
    import dataclasses

    from sortnet.models.pretrained import load_pretrained
    from sortnet.models.registry import create_model, input_normalization
    from sortnet.transfer.extract import FeatureExtractor
    from sortnet.transfer.featcache import backbone_key, cached_features, features_dir

    arch = bundle.choice["arch"]
    p = bundle.preprocessing
    mean, std = input_normalization(arch, p.mean, p.std, pretrained=True)
    prep = dataclasses.replace(p, mean=mean, std=std)
    model = create_model(arch, prep.channels, len(bundle.classes), prep.img_size, prep.mean, prep.std)
    origin = load_pretrained(model, arch, p.img_size, bundle.settings.get("weights"), progress)
    backbone = {"arch": arch, "weights_sha256": origin.sha256}
    extractor = FeatureExtractor(model, device, onnx_cache=features_dir() / f"{backbone_key(backbone, prep)}.onnx")
    parts = []
    for name in ("train", "val", "test"):
        s = getattr(bundle, name)
        if s is not None and len(s):
            feats, _ = cached_features(s, extractor, backbone, prep, ("orig", "flip"), seed=seed, progress=progress,
                                       desc=f"{name} features")
            parts.append(feats)
    return np.concatenate(parts, axis=1), f"{arch} features + linear head"


def head_out_of_fold(feats: np.ndarray, labels: np.ndarray, num_classes: int, fold: np.ndarray,
                     lam: float | None = None, seed: int = 0) -> np.ndarray:
    """float32 [N, K] softmax of head_logits_out_of_fold (uncalibrated; the studio's suspects panel)."""
    from sortnet.calibrate import calibrated_probs

    return calibrated_probs(head_logits_out_of_fold(feats, labels, num_classes, fold, lam, seed))


def head_logits_out_of_fold(feats: np.ndarray, labels: np.ndarray, num_classes: int, fold: np.ndarray,
                            lam: float | None = None, seed: int = 0) -> np.ndarray:
    """float32 [N, K] out-of-fold logits (uncalibrated) of a linear head on features [2, N, F] (orig, flip): per
    fold the head fitted on the other folds scores the held-out rows on their averaged views (the model file's
    flip TTA).
    lam: a fixed L2 strength (e.g. the one the full training's CV chose: one solve per fold) or None for the
    head's own CV in every fold. Also the studio's suspects panel (features already in memory)."""
    from sortnet.transfer.head import train_head

    logits = np.zeros((len(labels), num_classes), np.float32)
    held_mean = feats.mean(0)  # the averaged views = the model file's flip TTA for a linear head
    for f in np.unique(fold):
        tr, held = np.nonzero(fold != f)[0], np.nonzero(fold == f)[0]
        head = train_head(feats[:, tr], labels[tr], num_classes, views=("orig", "flip"), seed=seed, lam=lam)
        logits[held] = held_mean[held] @ head.weight.numpy().T + head.bias.numpy()
    return logits


def _pretrained_oof(bundle: DataBundle, labels: np.ndarray, fold: np.ndarray, folds: int, seed: int,
                    progress: bool, device) -> tuple[np.ndarray, dict]:
    t0 = time.perf_counter()
    feats, model = _pretrained_features(bundle, progress, seed, device)
    t1 = time.perf_counter()
    logits = head_logits_out_of_fold(feats, labels, len(bundle.classes), fold, seed=seed)
    return logits, {"path": "pretrained features", "model": model, "feature_seconds": round(t1 - t0, 2),
                    "head_seconds": round(time.perf_counter() - t1, 2)}


def default_budget(n: int) -> float:
    """Seconds for the from-scratch path's k fits together when none is given."""
    return float(min(BUDGET_MAX_S, max(BUDGET_MIN_S, n * BUDGET_PER_IMAGE_S)))


def _scratch_oof(bundle: DataBundle, data: ImageSet, fold: np.ndarray, folds: int, budget: float,
                 settings: dict) -> tuple[np.ndarray, dict]:
    """k fits on the other folds within budget seconds together; held-out logits with each model's TTA."""
    import dataclasses

    from sortnet.runs.fit import fit
    from sortnet.training.clock import Deadline
    from sortnet.tta import predict_logits

    k, deadline = len(bundle.classes), Deadline(budget)  # the k fits together, from here (training/clock.py)
    logits = np.zeros((len(data), k), np.float32)
    arch = None
    for f in range(folds):
        # an equal share of what is left (time an earlier fold did not use goes to the later ones), at least 1 s
        share = deadline.share(FOLD_OVERHEAD / (folds - f), minimum=MIN_FOLD_S)
        tr, held = np.nonzero(fold != f)[0], np.nonzero(fold == f)[0]
        sub = dataclasses.replace(bundle, train=data.subset(tr), val=None, test=None, notes=list(bundle.notes))
        clf = fit(sub, out=None, deadline=share, **settings)
        arch = clf.meta.arch if isinstance(clf.meta.arch, str) else "layer spec"
        logits[held] = predict_logits(clf.model, np.asarray(data.images[held]), next(clf.model.parameters()).device,
                                      tta=clf.meta.tta).float().numpy()
    return logits, {"path": "from scratch", "model": arch, "budget_seconds": round(budget, 1)}


def out_of_fold(data: str, *, folds: int = DEFAULT_FOLDS, seed: int = 0, time_budget: float | str | None = None,
                progress: bool = False, **settings) -> OutOfFold:
    """Out-of-fold probabilities of every image of a folder or label CSV (see the module docstring).

    time_budget: seconds (or "4m") for the from-scratch path's k fits together (default: 25 ms per image,
    60 s to 10 min); the pretrained path needs none. settings: any `sortnet train` setting (model, img_size,
    device, ...), passed to prepare and fit.
    """
    from sortnet.config import parse_duration
    from sortnet.device import resolve_device
    from sortnet.runs.prepare import prepare

    t0 = time.perf_counter()
    settings = {k: v for k, v in settings.items() if k not in ("val_fraction", "time_budget", "report")}
    bundle = prepare(data, val_fraction=0.0, seed=seed, progress=progress, **settings)
    data_set = pooled(bundle)
    labels = data_set.labels
    _check_folds(labels, folds)
    fold = fold_ids(labels, folds, seed)
    if bundle.choice and bundle.choice.get("pretrained"):
        logits, info = _pretrained_oof(bundle, labels, fold, folds, seed, progress,
                                      resolve_device(settings.get("device", "auto")))
    else:
        budget = parse_duration(time_budget) if time_budget is not None else default_budget(len(labels))
        fit_settings = {k: v for k, v in settings.items() if k not in ("check",)}
        logits, info = _scratch_oof(bundle, data_set, fold, folds, budget,
                                   dict(fit_settings, seed=seed, progress=False, report=False))
    from sortnet.calibrate import calibrated_probs

    probs = calibrated_probs(logits)  # temperature 1: see the module docstring
    accuracy = float((probs.argmax(1) == labels).mean()) if len(labels) else 0.0
    info.update(folds=folds, seed=seed, images=len(labels), accuracy=round(accuracy, 4),
                seconds=round(time.perf_counter() - t0, 2))
    paths = data_set.paths or [f"#{i}" for i in range(len(labels))]
    return OutOfFold(probs=probs, labels=labels, paths=paths, classes=list(bundle.classes), folds=fold, info=info,
                     logits=logits)
