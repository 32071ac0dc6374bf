"""Data-path benchmark: `check` speed, ingest throughput, peak RSS of `train` at 224 px, second-run start-up.

Usage:
    .venv/bin/python benchmarks/bench_data.py                 # 30,000 JPEGs 640x480, 10 classes, + 100k small
    .venv/bin/python benchmarks/bench_data.py --n 3000 --small 10000   # quicker

Data is generated (in parallel) under --root (default /tmp/sortnet-bench-data) and reused by later runs;
caches go to <root>/cache via $SORTNET_CACHE. Prints one JSON object with every number.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = 10


def _write_chunk(args: tuple[str, int, int, int, int, str]) -> int:
    """Write images [start, stop) of a generated set: class-coloured shapes on a gradient, plus noise."""
    root, start, stop, w, h, ext = args
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(start, stop):
        label, rng = i % CLASSES, np.random.default_rng(i)
        img = np.empty((h, w, 3), np.float32)
        img[...] = (xx / w * 120 + 40)[..., None]
        cy, cx, r = rng.integers(h // 4, 3 * h // 4), rng.integers(w // 4, 3 * w // 4), h // 5
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r if label % 2 else (abs(yy - cy) < r) & (abs(xx - cx) < r)
        img[mask] = np.array([(label * 53) % 256, (label * 97) % 256, (label * 29 + 80) % 256], np.float32)
        img += rng.normal(0, 8, (h // 8, w // 8, 3)).repeat(8, 0).repeat(8, 1)  # blocky noise: JPEG-realistic
        folder = Path(root) / f"class_{label}"
        out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        out.save(folder / f"img_{i:06d}.{ext}", quality=85) if ext == "jpg" else out.save(folder / f"img_{i:06d}.{ext}")
    return stop - start


def generate(root: Path, n: int, w: int, h: int, ext: str) -> float:
    if root.exists() and sum(1 for _ in root.rglob(f"*.{ext}")) == n:
        return 0.0
    for c in range(CLASSES):
        (root / f"class_{c}").mkdir(parents=True, exist_ok=True)
    t0, step = time.perf_counter(), 500
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_chunk, [(str(root), s, min(n, s + step), w, h, ext) for s in range(0, n, step)]))
    return time.perf_counter() - t0


def timed_check(data: Path) -> dict:
    from sortnet.data.check import run_check

    t0 = time.perf_counter()
    r = run_check(str(data), progress=False).report
    sec = time.perf_counter() - t0
    return {"seconds": round(sec, 2), "files": r["files"], "files_per_s": round(r["files"] / sec, 1),
            "computed": r["computed"]}


def timed_ingest(data: Path, size: int) -> dict:
    from sortnet.data.ingest import ingest
    from sortnet.data.listsource import listed_from_folder
    from sortnet.data.preprocess import Preprocessing

    paths = listed_from_folder(str(data)).paths
    t0 = time.perf_counter()
    res = ingest(paths, Preprocessing(img_size=size, channels=3), progress=False)
    sec = time.perf_counter() - t0
    return {"seconds": round(sec, 2), "decoded": res.decoded, "images_per_s": round(res.decoded / sec, 1)}


def timed_train(data: Path, out: Path, size: int, model: str) -> dict:
    """Run `sortnet train` under /usr/bin/time -v: peak RSS, start-up (launch -> 'model:' line), total."""
    cmd = ["/usr/bin/time", "-v", str(Path(sys.executable).parent / "sortnet"), "train", str(data), "--img-size",
           str(size), "--epochs", "1", "--model", model, "--out", str(out), "--no-tta"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    startup, lines = None, []
    for line in proc.stdout:
        lines.append(line)
        if startup is None and line.startswith("model:"):
            startup = time.perf_counter() - t0
    proc.wait()
    text = "".join(lines)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return {"rc": proc.returncode, "startup_s": round(startup or -1, 2), "total_s": round(time.perf_counter() - t0, 1),
            "peak_rss_mib": round(int(rss.group(1)) / 1024, 1) if rss else None,
            "notes": [ln.strip() for ln in lines if ln.startswith(("  streaming", "  balance", "check:", "done"))]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default="/tmp/sortnet-bench-data")
    ap.add_argument("--n", type=int, default=30_000)
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--model", default="linear")
    args = ap.parse_args()
    root = Path(args.root)
    os.environ["SORTNET_CACHE"] = str(root / "cache")
    big, small = root / f"jpeg{args.n}", root / f"small{args.small}"
    res: dict = {"cores": os.cpu_count(), "n": args.n, "img_size": args.img_size, "model": args.model}
    res["generate_s"] = round(generate(big, args.n, 640, 480, "jpg"), 1)
    res["check_cold"] = timed_check(big)
    res["check_cached"] = timed_check(big)
    res["ingest_cold"] = timed_ingest(big, args.img_size)
    res["train_first"] = timed_train(big, root / "run1", args.img_size, args.model)
    res["train_second"] = timed_train(big, root / "run2", args.img_size, args.model)
    print(json.dumps(res), flush=True)
    if args.small:
        res["generate_small_s"] = round(generate(small, args.small, 32, 32, "png"), 1)
        res["small_check_cold"] = timed_check(small)
        res["small_check_cached"] = timed_check(small)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
