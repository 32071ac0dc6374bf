"""Finding wrong labels (issue 20): flip a share of a clean folder's labels, then see what `find_label_errors` finds.

One invocation, on one machine:
  1. copy the folder into a temporary folder and flip `--rate` of its labels (seeded): each chosen file is moved
     into another class folder of its split (chosen at random), named flip_<name>;
  2. `sortnet.find_label_errors(copy)` (what `sortnet check COPY --labels` runs): wall time, out-of-fold accuracy;
  3. recall of the flips in the top 2 x (number flipped) of the ranking, recall and precision of the flagged
     suspects (suspects.csv), the estimated number of wrong labels against the true number, and how often the
     suggested class is the true one;
  4. with --retrain-epochs E (folders of small images): train the clean folder, the noisy copy and the cleaned
     copy (every flagged suspect moved to its suggested class with the moves API, as `--move-suspects` does) for
     E epochs each (fixed epochs: repeatable) and evaluate on --test; the share of the noise's accuracy cost that
     cleaning recovers.
Prints JSON with the machine, CPU flags and load averages.

Usage (from benchmarks/):
    python bench_labels.py --data ../../shared/data/hymenoptera                       # photos: pretrained features
    sortnet datasets --export fashion-mnist --limit 10000 --out /tmp/fm10k
    sortnet datasets --export fashion-mnist --split test --limit 5000 --out /tmp/fm-test
    python bench_labels.py --data /tmp/fm10k --time-budget 240 --retrain-epochs 8 --test /tmp/fm-test
    python bench_labels.py --data /tmp/fm10k --keep /tmp/bl --retrain-only --retrain-epochs 8 --test /tmp/fm-test
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLITS = ("train", "val", "valid", "validation", "test")


def class_dirs(root: Path) -> list[Path]:
    """The folders that hold class folders: root, or root/<split> for a split layout."""
    splits = [root / s for s in SPLITS if (root / s).is_dir()]
    return splits or [root]


def flip_labels(root: Path, rate: float, seed: int) -> dict[str, str]:
    """Move round(rate * N) images into another class folder of their split; {new rel path: true class}."""
    rng = np.random.default_rng(seed)
    files = sorted(p for base in class_dirs(root) for p in base.glob("*/*") if p.suffix.lower() in IMAGE_EXT)
    chosen = rng.choice(len(files), int(round(rate * len(files))), replace=False)
    flipped = {}
    for i in sorted(chosen):
        src = files[i]
        classes = sorted(d.name for d in src.parent.parent.iterdir() if d.is_dir() and d.name != src.parent.name)
        to = classes[rng.integers(len(classes))]
        dst = src.parent.parent / to / f"flip_{src.name}"
        src.rename(dst)
        flipped[dst.relative_to(root).as_posix()] = src.parent.name
    return flipped


def score(result, flipped: dict[str, str]) -> dict:
    k = len(flipped)
    top = {s.path for s in result.ranking[: 2 * k]}
    flagged = {s.path: s for s in result.suspects}
    caught = [p for p in flipped if p in flagged]
    return {"images": result.images, "flipped": k, "recall_top_2x": round(len(top & set(flipped)) / max(1, k), 4),
            "suspects": len(flagged), "suspects_recall": round(len(caught) / max(1, k), 4),
            "suspects_precision": round(len(caught) / max(1, len(flagged)), 4),
            "estimated_errors": result.estimated_errors, "estimate_over_true": round(result.estimated_errors / max(1, k), 3),
            "estimate_reliable": result.estimate_reliable,
            "calibrated_joint_estimate_over_true": round(result.estimated_errors_calibrated / max(1, k), 3),
            "suggestion_right": round(sum(flagged[p].suggested == flipped[p] for p in caught) / max(1, len(caught)), 4),
            "out_of_fold": result.out_of_fold, "seconds": result.seconds}


def retrain(folders: dict[str, Path], test: str, epochs: int, seed: int, model: str) -> dict:
    import sortnet

    out = {"model": model, "epochs": epochs}
    for name, folder in folders.items():
        t0 = time.perf_counter()
        bundle = sortnet.prepare(str(folder), model=model, seed=seed, progress=False)
        clf = sortnet.fit(bundle, model=model, epochs=epochs, seed=seed, progress=False)  # in memory: no files
        acc = clf.evaluate(test, progress=False)["accuracy"]
        out[name] = {"accuracy": round(float(acc), 4), "seconds": round(time.perf_counter() - t0, 1)}
    cost = out["clean"]["accuracy"] - out["noisy"]["accuracy"]
    gain = out["cleaned"]["accuracy"] - out["noisy"]["accuracy"]
    out["noise_cost"], out["recovered"] = round(cost, 4), round(gain, 4)
    out["recovered_share"] = round(gain / cost, 3) if cost > 0 else None
    return out


def machine() -> dict:
    flags = set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = {f for f in ("avx512_bf16", "avx512f", "avx2") if f in text}
    except OSError:
        pass
    return {"machine": platform.node(), "cpu_flags": sorted(flags), "cores": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def find_phase(args, tmp: Path) -> dict:
    """Flip, find, score; the noisy copy, flipped.json and found/suspects.csv stay in tmp."""
    from sortnet.labels.find import data_root, label_errors_from_probs, write_label_errors
    from sortnet.labels.oof import out_of_fold

    noisy = tmp / "noisy"
    shutil.copytree(args.data, noisy)
    flipped = flip_labels(noisy, args.rate, args.seed)
    (tmp / "flipped.json").write_text(json.dumps(flipped))
    t0 = time.perf_counter()
    # what sortnet.find_label_errors runs, in its two steps so that --save-oof can keep the probabilities
    oof = out_of_fold(str(noisy), folds=args.folds, seed=args.seed, time_budget=args.time_budget)
    found = label_errors_from_probs(oof.probs, oof.labels, oof.paths, oof.classes, data_root(str(noisy)),
                                    score=args.score, out_of_fold=oof.info, started=t0)
    wall = time.perf_counter() - t0
    # the same predictions temperature-scaled per fold (labels/oof.py calibrate_out_of_fold), side by side
    from sortnet.labels.oof import calibrate_out_of_fold

    scaled, calibration = calibrate_out_of_fold(oof.logits, oof.labels, oof.folds)
    alt = score(label_errors_from_probs(scaled, oof.labels, oof.paths, oof.classes, data_root(str(noisy)),
                                        score=args.score), flipped)
    temperature_scaled = dict({k: alt[k] for k in ("recall_top_2x", "suspects", "suspects_recall", "suspects_precision",
                                                   "estimated_errors", "estimate_over_true")}, **calibration)
    if args.save_oof:  # to compare estimators offline on the same predictions
        true = np.array([oof.classes.index(flipped.get(Path(os.path.relpath(p, noisy)).as_posix(),
                                                       oof.classes[y])) for p, y in zip(oof.paths, oof.labels)])
        np.savez(args.save_oof, probs=oof.probs, labels=oof.labels, true=true, folds=oof.folds,
                 logits=oof.logits)
    write_label_errors(found, tmp / "found")  # suspects.csv etc., as `check --labels --out` writes
    return dict(score(found, flipped), wall_seconds=round(wall, 1), load_average=machine()["load_average"],
                temperature_scaled=temperature_scaled)


def retrain_phase(args, tmp: Path) -> dict:
    """cleaned = noisy with every flagged suspect moved to its suggested class; clean / noisy / cleaned trained."""
    from sortnet.labels.moves import move_to_class
    from sortnet.data.suspects import read_suspects_csv

    cleaned = tmp / "cleaned"
    if not cleaned.exists():
        shutil.copytree(tmp / "noisy", cleaned)
        for s in read_suspects_csv(tmp / "found" / "suspects.csv"):  # as `check --move-suspects` does
            move_to_class(cleaned, s.path, s.suggested)
    out = retrain({"clean": Path(args.data), "noisy": tmp / "noisy", "cleaned": cleaned}, args.test,
                  args.retrain_epochs, args.seed, args.retrain_model)
    return dict(out, load_average=machine()["load_average"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="a clean image folder")
    ap.add_argument("--rate", type=float, default=0.05, help="share of labels flipped [default: 0.05]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--time-budget", help="from-scratch path: seconds for the k fits together")
    ap.add_argument("--score", default="self_confidence")
    ap.add_argument("--retrain-epochs", type=int, default=0, help="also train clean / noisy / cleaned (0: skip)")
    ap.add_argument("--test", help="folder to evaluate the retrained models on (with --retrain-epochs)")
    ap.add_argument("--retrain-model", default="auto", help="model of the retraining runs [default: auto]")
    ap.add_argument("--keep", help="make the noisy and cleaned copies here (kept) instead of a temporary folder")
    ap.add_argument("--retrain-only", action="store_true", help="reuse --keep's noisy copy and suspects: retrain only")
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("--save-oof", help="also save the out-of-fold probabilities, given and true labels (.npz)")
    args = ap.parse_args()

    result = {"command": " ".join(os.sys.argv), "start": machine()}
    with tempfile.TemporaryDirectory(prefix="bench-labels-") as tmp:
        tmp = Path(args.keep or tmp)
        if not args.retrain_only:
            result["find"] = find_phase(args, tmp)
            print(json.dumps(result["find"], indent=2), flush=True)  # before the (long) retraining
        if args.retrain_epochs:
            result["retrain"] = retrain_phase(args, tmp)
    result["end"] = machine()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
