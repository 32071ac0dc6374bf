"""`sortnet search` against the default model given the same time; trials per hour; data-preparation share.

Both systems get the same wall-clock budget on the same data: `sortnet.search(data, time_budget=B)` (NSGA-II,
by default with objectives accuracy,latency: a Pareto front) and `sortnet.train(data, time_budget=B)` (the
default model and recipe). Accuracies are on the data's test/ split, which neither system sees while
choosing (the search ranks trials by validation accuracy). Built-in datasets can be cut to a subset
(--train-images, --test-images) written as PNG folders (DATA/train/<class>, DATA/test/<class>).

Usage:
    python benchmarks/bench_search.py --data fashion-mnist --train-images 10000 --budget 10m \
        --out runs/bench-search [--objectives accuracy] [--json runs/bench-search.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import sortnet
from sortnet.config import parse_duration
from sortnet.data.export_images import export_images
from sortnet.nas.leaderboard import LATENCY


def machine() -> dict:
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in cpu.splitlines() if line.startswith("flags")), [])
    simd = [f for f in flags if f.startswith(("avx", "amx", "fma"))]
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "simd_flags": " ".join(sorted(simd)),
            "python": platform.python_version(), "torch": __import__("torch").__version__,
            "optuna": __import__("optuna").__version__}


def subset_folder(name: str, root: Path, train: int, test: int) -> Path:
    """DATA/train/<class>/*.png (first `train` images) and DATA/test/<class>/*.png, written once."""
    data = root / f"{name}-{train}"
    if not (data / "done").exists():
        export_images(name, data / "train", split="train", limit=train)
        export_images(name, data / "test", split="test", limit=test)
        (data / "done").write_text("")
    return data


def run_search(data, out: Path, budget: float, objectives: str) -> dict:
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    result = sortnet.search(str(data), out=out, time_budget=budget, objectives=objectives, progress=True)
    wall = time.perf_counter() - t0
    rows = result.leaderboard
    finished = [r for r in rows if r["state"] in ("complete", "pruned")]
    done = [r for r in rows if r["state"] == "complete"]
    best = done[0] if done else {}
    trials_by_time = sorted(finished, key=lambda r: r["trial"])
    prep = [r["prepare_seconds"] or 0.0 for r in trials_by_time]
    walls = [r["wall_seconds"] or 0.0 for r in trials_by_time]
    firsts = {min(r["trial"] for r in trials_by_time if r["img_size"] == size)
              for size in {r["img_size"] for r in trials_by_time}}  # each image size's first trial
    later = [r for r in trials_by_time if r["trial"] not in firsts]
    return {
        "wall_seconds": round(wall, 1), "load_start": load0, "load_end": os.getloadavg()[0],
        "trials_finished": len(finished), "trials_complete": len(done),
        "trials_failed": sum(r["state"] == "fail" for r in rows),
        "trials_per_hour": round(len(finished) / wall * 3600, 1),
        "prepare_share_all": round(sum(prep) / max(sum(walls), 1e-9), 4),
        "prepare_share_later_trials": round(sum(r["prepare_seconds"] or 0.0 for r in later)
                                            / max(sum(r["wall_seconds"] or 0.0 for r in later), 1e-9), 4),
        "prepare_seconds_by_first_trial_of_size": {r["img_size"]: r["prepare_seconds"] for r in trials_by_time
                                                   if r["trial"] in firsts},
        "best": {k: best.get(k) for k in ("trial", "val_accuracy", "test_accuracy", LATENCY, "params", "spec",
                                          "img_size", "epochs_run", "lr", "batch_size", "augment")},
        "pareto": [{k: r[k] for k in ("trial", "val_accuracy", "test_accuracy", LATENCY, "spec")}
                   for r in done if r["pareto"]],
        "files": {k: str(v) for k, v in result.files.items()},
    }


def run_default(data, out: Path, budget: float) -> dict:
    """The default model and recipe with the same budget (one run: the time budget plans its schedule)."""
    from sortnet.infer.latency import model_latency_ms_1thread
    from sortnet.models.macs import parameter_count

    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    clf = sortnet.train(str(data), out=str(out), time_budget=budget, progress=False)
    m = clf.metrics
    return {"wall_seconds": round(time.perf_counter() - t0, 1), "load_start": load0, "load_end": os.getloadavg()[0],
            "arch": clf.meta.arch, "val_accuracy": m["val"]["accuracy"], "test_accuracy": m["test"]["accuracy"],
            "epochs": m["epochs"], "train_seconds": m["train_seconds"],
            LATENCY: round(model_latency_ms_1thread(clf.model, clf.preprocessing.channels,
                                                    clf.preprocessing.img_size), 4),
            "params": parameter_count(clf.model)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--train-images", type=int, default=10000,
                    help="built-in data: first N training images as a PNG folder (0: the built-in set as is)")
    ap.add_argument("--test-images", type=int, default=2000)
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--objectives", default="accuracy,latency")
    ap.add_argument("--out", default="runs/bench-search")
    ap.add_argument("--systems", default="default,search", help="which to run: default, search or both")
    ap.add_argument("--json")
    args = ap.parse_args()
    out, budget = Path(args.out), parse_duration(args.budget)
    if Path(args.data).exists() or not args.train_images:
        data = args.data  # a folder, or a built-in dataset used whole (with its own test split)
    else:
        data = subset_folder(args.data, out / "data", args.train_images, args.test_images)
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "data": str(data),
              "budget_seconds": budget, "objectives": args.objectives}
    if "default" in args.systems:
        report["default"] = run_default(data, out / "default", budget)
        print(json.dumps(report["default"], indent=2), flush=True)
    if "search" in args.systems:
        report["search"] = run_search(data, out / "search", budget, args.objectives)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
