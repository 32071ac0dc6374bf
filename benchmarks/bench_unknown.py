"""Unknown images and calibration: which scorer says "none of these" best, and does temperature scaling calibrate?

Two experiments, each training real sortnet models on this machine and scoring every method on the SAME model:
  1. Fashion-MNIST, one class held out at a time: train on the other 9 (sortnet.fit, --epochs on --train-images),
     known = the official test images of the 9 classes, unknown = the held-out class's test images.
  2. Hymenoptera (ants/bees, pretrained EfficientNet-Lite0 head) as known vs other real photos as unknown:
     scikit-image's sample photos (each whole + random crops) and Fashion-MNIST test images upsampled to RGB.
     Hymenoptera has no test split, so its val images are split in two halves: threshold and temperature are
     fitted on one half and measured on the other, then the other way round (the two numbers averaged).
Per method (msp, energy, mahalanobis, knn, knn+msp, knn+energy, knn+mahalanobis; sortnet/unknown/scorer.py): AUROC (known vs unknown), the share of
unknown images rejected at the threshold set on validation to accept 95% of known images, and the share of known
held-out images that threshold accepts. Calibration: ECE (15 bins) and NLL on the held-out split before/after the
temperature, and accuracy (unchanged by construction).

Usage:
    python benchmarks/bench_unknown.py --holdout 0 1 2 --epochs 3 --json /tmp/unknown.json
    python benchmarks/bench_unknown.py --skip-fashion                     # hymenoptera only
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO.parent / "shared" / "data" / "hymenoptera"
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "moon", "hubble_deep_field",
                  "immunohistochemistry", "retina", "cat", "clock", "brick", "grass", "gravel", "text", "page")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(known)), np.ones(len(unknown))]
    return float(roc_auc_score(y, np.r_[known, unknown]))


def method_scores(model, meta, train_set, sets: dict, tta, variants: bool = False) -> dict:
    """{method: {set name: scores}} for every method (and, with variants, every exploratory variant), from one
    pass of features over each set: all scored on the SAME model. sets must hold "val" (known validation
    images: the combined methods standardize their components on it, as sortnet.unknown.fit does)."""
    from sortnet.calibrate import temperature_of
    from sortnet.unknown.fit import MAX_FIT_IMAGES, features_and_logits, unknown_scores
    from sortnet.unknown.scorer import METHODS, fit_scorer, stratified_rows

    rows = stratified_rows(train_set.labels, MAX_FIT_IMAGES)
    train_feats = features_and_logits(model, train_set.subset(rows).images, "cpu", tta=tta)[0].numpy()
    outs = {name: features_and_logits(model, images, "cpu", tta=tta) for name, images in sets.items()}
    result = {}
    for method in METHODS:
        scorer = fit_scorer(method, train_feats, train_set.labels[rows], meta.num_classes, temperature_of(meta),
                            val=outs["val"])
        result[method] = {name: unknown_scores(scorer, f, lg) for name, (f, lg) in outs.items()}
    if variants:
        result.update(variant_scores(train_feats, train_set.labels[rows], outs, result))
    return result, {name: lg for name, (_, lg) in outs.items()}


def variant_scores(train_feats, train_labels, outs: dict, base: dict) -> dict:
    """Exploratory scores, not in sortnet (measured here to decide what is worth building):
    knn with other k (Sun et al. 2022 tune k on validation); knn on features centred by the training mean before
    L2 normalization (post-ReLU features all point into one orthant, so raw cosines crowd near 1); the max rather
    than the sum of the standardized components; centred knn plus msp."""
    from sortnet.unknown.fit import unknown_scores
    from sortnet.unknown.scorer import fit_scorer

    out = {}
    for k in (1, 20, 50):
        scorer = fit_scorer("knn", train_feats, train_labels, 1, k=k)
        out[f"knn k={k}"] = {name: unknown_scores(scorer, f, lg) for name, (f, lg) in outs.items()}
    mean = train_feats[stratified_bank(train_labels)].mean(0)
    scorer = fit_scorer("knn", train_feats - mean, train_labels, 1)
    out["knn centred"] = {name: unknown_scores(scorer, f.numpy() - mean, lg) for name, (f, lg) in outs.items()}

    def z(scores):  # standardized on the known validation images, as the combined methods do
        v = scores["val"]
        return {name: (s - v.mean()) / max(v.std(ddof=1), 1e-6) for name, s in scores.items()}

    zk, zm, zc = z(base["knn"]), z(base["msp"]), z(out["knn centred"])
    out["max(knn, msp)"] = {name: np.maximum(zk[name], zm[name]) for name in zk}
    out["knn centred+msp"] = {name: zc[name] + zm[name] for name in zk}
    return out


def stratified_bank(labels):
    from sortnet.unknown.scorer import MAX_BANK, stratified_rows

    return stratified_rows(labels, MAX_BANK)


def threshold_numbers(val: np.ndarray, known: np.ndarray, unknown: np.ndarray, accept: float = 0.95) -> dict:
    from sortnet.unknown.threshold import threshold_entry

    t = threshold_entry(val, accept)["threshold"]
    return {"auroc": auroc(known, unknown), "unknown_rejected": float((unknown > t).mean()),
            "known_accepted": float((known <= t).mean())}


def calibration_numbers(logits, labels, temperature: float) -> dict:
    from sortnet.calibrate import calibrated_probs, nll
    from sortnet.calibrate import expected_calibration_error

    before, after = calibrated_probs(logits), calibrated_probs(logits, temperature)
    return {"temperature": temperature, "accuracy": float((before.argmax(1) == labels).mean()),
            "accuracy_after": float((after.argmax(1) == labels).mean()),
            "ece_before": expected_calibration_error(labels, before), "ece_after": expected_calibration_error(labels, after),
            "nll_before": nll(logits, labels), "nll_after": nll(logits, labels, temperature)}


def fashion_holdout(bundle, held: int, args) -> dict:
    """Train on 9 Fashion-MNIST classes (a fixed number of epochs on a stratified sample: repeatable on a busy
    machine, where a time budget buys a different model each run); every method scored on the 10th."""
    import sortnet
    from sortnet.calibrate import temperature_of
    from sortnet.data.dataset import ImageSet
    from sortnet.unknown.scorer import stratified_rows

    keep = [c for c in range(len(bundle.classes)) if c != held]
    remap = np.full(len(bundle.classes), -1)
    remap[keep] = np.arange(len(keep))
    classes = [bundle.classes[c] for c in keep]

    def known(s, cap):
        rows = np.flatnonzero(s.labels != held)
        rows = rows[stratified_rows(s.labels[rows], cap)]
        return ImageSet(np.asarray(s.images)[rows], remap[s.labels[rows]], classes)

    b9 = dataclasses.replace(bundle, train=known(bundle.train, args.train_images), val=known(bundle.val, args.val_images),
                             test=known(bundle.test, args.test_images), classes=classes)
    t0 = time.perf_counter()
    clf = sortnet.fit(b9, model=args.model, epochs=args.epochs, progress=False, report=False)
    train_s = time.perf_counter() - t0
    unknown_images = np.asarray(bundle.test.images)[bundle.test.labels == held]
    tta = clf.meta.tta
    scores, logits = method_scores(clf.model, clf.meta, b9.train, {"val": b9.val.images, "known": b9.test.images,
                                                                   "unknown": unknown_images}, tta, args.variants)
    out = {"held_out": bundle.classes[held], "train_seconds": round(train_s, 1), "arch": clf.meta.arch,
           "methods": {m: threshold_numbers(s["val"], s["known"], s["unknown"]) for m, s in scores.items()},
           "calibration": calibration_numbers(logits["known"], b9.test.labels, temperature_of(clf.meta))}
    log(f"held out {out['held_out']}: " + ", ".join(f"{m} {v['auroc']:.3f}" for m, v in out["methods"].items())
        + f"; ECE {out['calibration']['ece_before']:.4f} -> {out['calibration']['ece_after']:.4f}")
    return out


def photo_unknowns(prep, n_fashion: int, seed: int = 0) -> dict:
    """{"skimage": uint8 [N, C, S, S] (each sample photo whole + 4 random crops), "fashion": upsampled FMNIST}."""
    import skimage.data
    from PIL import Image

    from sortnet.data.preprocess import image_to_array

    rng = np.random.default_rng(seed)
    photos = []
    for name in SKIMAGE_PHOTOS:
        arr = getattr(skimage.data, name)()
        img = Image.fromarray(arr).convert("RGB")
        photos.append(image_to_array(img, prep))
        w, h = img.size
        for _ in range(4):
            side = int(min(w, h) * rng.uniform(0.5, 0.9))
            x, y = rng.integers(0, w - side + 1), rng.integers(0, h - side + 1)
            photos.append(image_to_array(img.crop((x, y, x + side, y + side)), prep))
    from sortnet.runs.prepare import prepare

    fashion = prepare("fashion-mnist", progress=False, check=False).test
    rows = rng.choice(len(fashion), n_fashion, replace=False)
    ups = [image_to_array(Image.fromarray(np.asarray(fashion.images[i])[0]).convert("RGB"), prep) for i in rows]
    return {"skimage": np.stack(photos), "fashion": np.stack(ups)}


def hymenoptera(data: Path, n_fashion: int, variants: bool = False) -> dict:
    import sortnet
    from sortnet.calibrate import fit_temperature

    bundle = sortnet.prepare(str(data), progress=False)
    t0 = time.perf_counter()
    clf = sortnet.fit(bundle, progress=False, report=False)
    train_s = time.perf_counter() - t0
    unknown = photo_unknowns(clf.meta.preprocessing, n_fashion)
    sets = {"val": bundle.val.images, **unknown}
    scores, logits = method_scores(clf.model, clf.meta, bundle.train, sets, clf.meta.tta, variants)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(bundle.val))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    out = {"arch": clf.meta.arch, "train_seconds": round(train_s, 1), "val_images": len(bundle.val),
           "unknown_images": {k: len(v) for k, v in unknown.items()}, "methods": {}, "calibration": []}
    for m, s in scores.items():
        every = np.concatenate([s["skimage"], s["fashion"]])
        folds = [threshold_numbers(s["val"][a], s["val"][b], every) for a, b in (halves, halves[::-1])]
        out["methods"][m] = {k: float(np.mean([f[k] for f in folds])) for k in folds[0]}
        out["methods"][m]["auroc"] = auroc(s["val"], every)
        out["methods"][m]["auroc_skimage"] = auroc(s["val"], s["skimage"])
        out["methods"][m]["auroc_fashion"] = auroc(s["val"], s["fashion"])
    labels = bundle.val.labels
    for a, b in (halves, halves[::-1]):
        t = fit_temperature(logits["val"][a], labels[a])
        out["calibration"].append(calibration_numbers(logits["val"][b], labels[b], t))
    log("hymenoptera: " + ", ".join(f"{m} AUROC {v['auroc']:.3f} rejected {v['unknown_rejected']:.2f}"
                                    for m, v in out["methods"].items()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--holdout", type=int, nargs="*", default=list(range(10)), help="Fashion-MNIST classes to hold out")
    ap.add_argument("--model", default="cnn-tiny", help="Fashion-MNIST model [default: cnn-tiny]")
    ap.add_argument("--epochs", type=int, default=3, help="Fashion-MNIST epochs per run [default: 3]")
    ap.add_argument("--train-images", type=int, default=6000, help="Fashion-MNIST training sample per run")
    ap.add_argument("--val-images", type=int, default=2000, help="Fashion-MNIST validation sample per run")
    ap.add_argument("--test-images", type=int, default=9000, help="Fashion-MNIST known test images per run")
    ap.add_argument("--skip-fashion", action="store_true")
    ap.add_argument("--skip-photos", action="store_true")
    ap.add_argument("--photos", default=str(DEFAULT_PHOTOS))
    ap.add_argument("--fashion-unknowns", type=int, default=200, help="upsampled Fashion-MNIST images as unknowns")
    ap.add_argument("--variants", action="store_true",
                    help="also score exploratory variants (other k, centred knn, max/other combinations)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.manual_seed(0)
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_before": os.getloadavg(), "fashion": []}
    if not args.skip_photos:  # first: the photo targets matter most, and the machine may be needed back
        result["hymenoptera"] = hymenoptera(Path(args.photos), args.fashion_unknowns, args.variants)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
    if not args.skip_fashion:
        from sortnet.runs.prepare import prepare

        bundle = prepare("fashion-mnist", progress=False, check=False)
        for h in args.holdout:
            result["fashion"].append(fashion_holdout(bundle, h, args))
            if args.json:
                Path(args.json).write_text(json.dumps(result, indent=2))
        runs = result["fashion"]
        result["fashion_mean_auroc"] = {m: float(np.mean([r["methods"][m]["auroc"] for r in runs]))
                                        for m in runs[0]["methods"]} if runs else {}
    result["load_after"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
