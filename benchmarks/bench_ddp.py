"""Data-parallel training throughput: images/s of `sortnet train --nproc N` for N = 1, 2, ... on this machine.

Each N trains the same model, recipe and global batch on the same data for --epochs epochs (fp32, no
progress) through the real CLI; images/s = images trained per epoch (steps x global batch) / epoch seconds,
the median over the epochs after the first (which includes warm-up). N = 1 runs without torchrun.

Usage:
    python benchmarks/bench_ddp.py --data fashion-mnist --train-images 4000 --nprocs 1,2,1t [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_search import machine, subset_folder  # noqa: E402


def run(data: Path, config: str, args) -> dict:
    """config "N": N processes; "1t": one process with one thread (the control for thread contention)."""
    nproc, one_thread = int(config.rstrip("t")), config.endswith("t")
    # one process, one thread: sortnet shares a machine's cores among LOCAL_WORLD_SIZE processes
    env = dict(os.environ, LOCAL_WORLD_SIZE="2") if one_thread else None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "sortnet", "train", str(data), "--out", str(out), "--model", args.model,
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--precision", "fp32",
               "--no-progress", "--device", "cpu", "--nproc", str(nproc)]
        load0, t0 = os.getloadavg()[0], time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        wall = time.perf_counter() - t0
        metrics = json.loads((out / "metrics.json").read_text())
        run_cfg = json.loads((out / "run.json").read_text())
    per_epoch = run_cfg["recipe"]["batch_size"] * (args.train_size // run_cfg["recipe"]["batch_size"])
    rates = [per_epoch / h["epoch_seconds"] for h in metrics["history"][1:]]
    return {"config": config, "images_per_second": round(statistics.median(rates), 1),
            "epoch_seconds": [round(h["epoch_seconds"], 2) for h in metrics["history"]],
            "val_accuracy": metrics["val"]["accuracy"], "wall_seconds": round(wall, 1),
            "load_start": load0, "load_end": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--train-images", type=int, default=10000)
    ap.add_argument("--nprocs", default="1,2,1t", help="process counts; 1t = one process with one thread")
    ap.add_argument("--model", default="cnn-small")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--out", default="runs/bench-ddp")
    ap.add_argument("--json")
    args = ap.parse_args()
    data = Path(args.data) if Path(args.data).exists() else subset_folder(args.data, Path(args.out) / "data",
                                                                          args.train_images, 2000)
    import sortnet

    args.train_size = len(sortnet.prepare(str(data), progress=False, check=False).train)  # after the val split
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "data": str(data),
              "model": args.model, "batch_size": args.batch_size, "epochs": args.epochs,
              "runs": [run(data, n, args) for n in args.nprocs.split(",")]}
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
