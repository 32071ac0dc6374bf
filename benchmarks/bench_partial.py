"""Partial fine-tuning vs the head alone, same budget, same machine, one invocation (issue 23).

Runs, in this order, each with a fresh $SORTNET_CACHE (cold: extraction counted), whole-command wall time:
  1. Fashion-MNIST subset as a photo folder (train/val/test PNGs, 28 px grey, upsampled to the backbone's
     224 px by --img-size 224, as --pretrained does on the built-in set): `--finetune head --time-budget B`
     and `--finetune auto --time-budget B` (auto -> partial on a CPU); val and test accuracy.
  2. hymenoptera (ants/bees photos): the default command (no budget), then head vs auto with --time-budget B.
Prints JSON lines with load averages before/after each run; --json writes them all.

Usage:
    python benchmarks/bench_partial.py --fmnist-budget 200 --photo-budget 150 --json /tmp/bench_partial.json
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HYMENOPTERA = REPO.parent / "shared" / "data" / "hymenoptera"
FMNIST = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def fmnist_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """train/val/test folders of PNGs: train and val disjoint from FMNIST's train set, test from its test set."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sources = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    loaded = {k: (_idx(FMNIST / a), _idx(FMNIST / b)) for k, (a, b) in sources.items()}
    for c, name in enumerate(CLASSES):
        rows = rng.permutation(np.nonzero(loaded["train"][1] == c)[0])
        test_rows = rng.permutation(np.nonzero(loaded["test"][1] == c)[0])
        picks = {"train": (loaded["train"][0], rows[:per_class["train"]]),
                 "val": (loaded["train"][0], rows[per_class["train"]:per_class["train"] + per_class["val"]]),
                 "test": (loaded["test"][0], test_rows[:per_class["test"]])}
        for split, (images, idx) in picks.items():
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in idx:
                Image.fromarray(images[i]).save(d / f"{i}.png")
    return root


def run(tag: str, data: Path, *args: str) -> dict:
    cache = tempfile.mkdtemp(prefix="sortnet-cache-")
    out = tempfile.mkdtemp(prefix="sortnet-run-")
    env = {**os.environ, "SORTNET_CACHE": cache, "SORTNET_OFFLINE": "1"}
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "sortnet", "train", str(data), "--out", out, "--no-report", *args],
                       capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    metrics = json.loads((Path(out) / "metrics.json").read_text()) if (Path(out) / "metrics.json").is_file() else {}
    lines = [ln for ln in p.stdout.splitlines() if re.search(r"finetune|partial|head:|activations:|features:|done", ln)]
    row = {"tag": tag, "args": list(args), "rc": p.returncode, "wall_s": round(wall, 1),
           "val": metrics.get("val", {}).get("accuracy"), "test": metrics.get("test", {}).get("accuracy"),
           "load_before": [round(x, 1) for x in load0], "load_after": [round(x, 1) for x in os.getloadavg()],
           "log": lines[-14:]}
    if p.returncode:
        row["stderr"] = p.stderr[-800:]
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fmnist-budget", type=float, default=200)
    ap.add_argument("--photo-budget", type=float, default=150)
    ap.add_argument("--per-class", default="30,10,15", help="FMNIST train,val,test images per class")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: fmnist,photos")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rows = []
    skip = set(a.skip.split(","))
    if "fmnist" not in skip:
        tr, va, te = (int(x) for x in a.per_class.split(","))
        folder = fmnist_folder(Path(tempfile.mkdtemp(prefix="fmnist-")), {"train": tr, "val": va, "test": te})
        for mode in ("head", "auto"):
            rows.append(run(f"fmnist-{mode}", folder, "--img-size", "224", "--finetune", mode,
                            "--time-budget", f"{a.fmnist_budget:g}"))
    if "photos" not in skip:
        rows.append(run("hymenoptera-default", HYMENOPTERA))
        for mode in ("head", "auto"):
            rows.append(run(f"hymenoptera-{mode}", HYMENOPTERA, "--finetune", mode,
                            "--time-budget", f"{a.photo_budget:g}"))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
