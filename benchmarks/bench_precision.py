"""fp32 and bf16 side by side, same run: training images/s and accuracy, built-in Fashion-MNIST and a folder.

The same images two ways: the built-in set (its first N training images, the first N_VAL of its validation
split, all 10k test images) and a folder of them exported as PNGs with `sortnet datasets --export`
(DIR/train, DIR/val, DIR/test, decoded by the folder loader). Each model trains a fixed number of epochs in
fp32 and in bf16 autocast, one after the other per (data, model) so that a busy machine slows both alike,
from the same seed; recorded are the last epoch's training images/s, validation and test accuracy, and what
`--precision auto` picks for that workload on this machine (measured into a fresh cache:
training/precision.py). Where the CPU lacks native bf16, bf16 is emulated (slow) and auto stays fp32.

Usage:
    python benchmarks/bench_precision.py --train 20000 --epochs 2 --models cnn-tiny,cnn-small
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_budget import sortnet_command  # noqa: E402
from bench_fp32 import cpu_summary  # noqa: E402

N_VAL = 2000


def export_folder(out: Path, n_train: int, n_test: int) -> Path:
    for split, limit in (("train", n_train), ("val", N_VAL), ("test", n_test)):
        subprocess.run(sortnet_command() + ["datasets", "--export", "fashion-mnist", "--split", split, "--limit",
                                            str(limit), "--out", str(out / split)], check=True,
                       stdout=subprocess.DEVNULL)
    return out


def bundles(n_train: int, n_test: int, folder: Path) -> dict:
    import sortnet

    builtin = sortnet.prepare("fashion-mnist", progress=False)
    builtin.train = builtin.train.subset(np.arange(n_train))
    builtin.val = builtin.val.subset(np.arange(N_VAL))
    builtin.test = builtin.test.subset(np.arange(n_test))
    return {"built-in fashion-mnist": builtin, "PNG folder": sortnet.prepare(str(folder), progress=False,
                                                                             check=False)}


def auto_choice(bundle, model: str) -> str:
    """What --precision auto picks for this workload here: the 'precision:' line of the run's set-up."""
    import torch

    from sortnet.device import resolve_device, resolve_precision
    from sortnet.runs.fit import _fit_config, build_trainer

    cfg = _fit_config(bundle, {"model": model, "epochs": 1, "precision": "auto", "progress": False})
    device = resolve_device("cpu")
    trainer = build_trainer(bundle, cfg, device, resolve_precision("auto", device), None)
    line = next((n for n in trainer.notes if n.startswith("precision:")), None)
    return line.removeprefix("precision: ") if line else ("fp32 (no native bf16: not measured)"
                                                           if trainer.dtype is None else str(torch.bfloat16))


def train_once(bundle, model: str, precision: str, epochs: int, seed: int) -> dict:
    import sortnet

    load = os.getloadavg()[0]
    t0 = time.monotonic()
    clf = sortnet.fit(bundle, model=model, epochs=epochs, precision=precision, seed=seed, progress=False)
    wall = time.monotonic() - t0
    last = clf.metrics["history"][-1]
    return {"images_per_second": round(last["images_per_second"], 1), "val_accuracy": round(last["val_accuracy"], 4),
            "test_accuracy": round(clf.metrics["test"]["accuracy"], 4), "train_loss": round(last["loss"], 4),
            "wall": round(wall, 1), "load_avg": round(load, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=20_000, help="training images (the first N of the built-in split)")
    p.add_argument("--test", type=int, default=10_000, help="test images (the first N of the test split)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--models", default="cnn-tiny,cnn-small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="fp32/bf16 pairs per (data, model), order alternating")
    p.add_argument("--json")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sortnet-prec-") as tmp:
        os.environ["SORTNET_CACHE"] = str(Path(tmp) / "cache")  # auto measures now, not a remembered choice
        sets = bundles(args.train, args.test, export_folder(Path(tmp) / "fmnist", args.train, args.test))
        for data, bundle in sets.items():
            for model in args.models.split(","):
                auto = auto_choice(bundle, model)
                for rep in range(args.repeats):  # fp32 first, then bf16 first: a load that changes hits both
                    for precision in (("fp32", "bf16") if rep % 2 == 0 else ("bf16", "fp32")):
                        r = dict(data=data, model=model, precision=precision, repeat=rep, auto=auto,
                                 **train_once(bundle, model, precision, args.epochs, args.seed))
                        rows.append(r)
                        print(f"[{time.strftime('%H:%M:%S')}] {json.dumps(r)}", file=sys.stderr, flush=True)
    print_table(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def _median(values):
    return sorted(values)[len(values) // 2]


def print_table(rows: list[dict], args) -> None:
    cpu = cpu_summary()
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}; CPU {cpu['model']}, flags {' '.join(cpu['flags'])}; "
          f"{os.cpu_count()} CPUs, {len(os.sched_getaffinity(0))} usable (torch threads); {args.epochs} epochs on "
          f"{args.train:,} training images, {N_VAL:,} val, {args.test:,} test; {args.repeats} fp32/bf16 pairs; "
          f"`python benchmarks/bench_precision.py --train {args.train} --test {args.test} --epochs {args.epochs} "
          f"--models {args.models} --repeats {args.repeats}`\n")
    print("| data | model | CPU flags | precision | train images/s (median; range) | bf16 / fp32 (median of pairs) | "
          "val accuracy | test accuracy | final train loss | load avg | --precision auto picks |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    groups = dict.fromkeys((r["data"], r["model"], r["precision"]) for r in rows)
    for data, model, precision in groups:
        runs = [r for r in rows if (r["data"], r["model"], r["precision"]) == (data, model, precision)]
        ips = [r["images_per_second"] for r in runs]
        ratio = ""
        if precision == "bf16":
            fp32 = {r["repeat"]: r["images_per_second"] for r in rows
                    if (r["data"], r["model"], r["precision"]) == (data, model, "fp32")}
            ratio = f"{_median([r['images_per_second'] / fp32[r['repeat']] for r in runs]):.2f}x"
        accs = sorted({r["test_accuracy"] for r in runs})
        print(f"| {data} | {model} | {' '.join(cpu['flags'])} | {precision} | {_median(ips):,.0f}; "
              f"{min(ips):,.0f}-{max(ips):,.0f} | {ratio} | {_median([r['val_accuracy'] for r in runs]):.4f} | "
              f"{'/'.join(f'{a:.4f}' for a in accs)} | {_median([r['train_loss'] for r in runs]):.4f} | "
              f"{min(r['load_avg'] for r in runs)}-{max(r['load_avg'] for r in runs)} | "
              f"{runs[0]['auto'] if precision == 'fp32' else ''} |")


if __name__ == "__main__":
    sys.exit(main())
