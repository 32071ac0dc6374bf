"""`sortnet train DATA --time-budget B` as a user runs it: the whole command's wall time against its budget.

Each run is the real CLI in a subprocess, timed from launch to exit. From the run's metrics.json it reads
when training began and ended and when the model file was written (seconds after the process started),
the test accuracy, and what the planner chose (model, steps, epochs, test-time augmentation). "Budget used"
is the command's wall time / B; the issue's target is training ending within 5% of the budget's end, i.e.
the model file written between 0.95 B and B.

Usage:
    python benchmarks/bench_budget.py --data fashion-mnist --budgets 20,60 --seeds 2
    python benchmarks/bench_budget.py --data digits28 --budgets 10,20     # bench_small_data.py's folder
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fp32 import cpu_summary  # noqa: E402


def sortnet_command() -> list[str]:
    script = Path(sys.executable).parent / "sortnet"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sortnet"]


def resolve_data(name: str) -> str:
    if name in ("digits28", "fmnist8k"):
        import bench_small_data

        return str(getattr(bench_small_data, f"make_{name}")())
    return name


def run_once(data: str, budget: float, seed: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="sortnet-budget-") as tmp:
        out = Path(tmp) / "run"
        cmd = sortnet_command() + ["train", data, "--time-budget", f"{budget:g}s", "--out", str(out),
                                   "--seed", str(seed), "--no-progress"] + extra
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            return {"budget": budget, "seed": seed, "error": proc.stderr[-500:]}
        metrics = json.loads((out / "metrics.json").read_text())
        recipe = json.loads((out / "run.json").read_text())["recipe"]
    b = metrics["budget"]
    return {"budget": budget, "seed": seed, "wall": round(wall, 2), "model_written": b["used_seconds"],
            "training_began": b.get("training_began"), "training_ended": b.get("training_ended"),
            "test_acc": metrics["test"]["accuracy"] if "test" in metrics else None,
            "model": recipe["model"], "steps_planned": recipe["total_steps"], "epochs": metrics["epochs"],
            "tta": "skipped" if "tta_skipped" in metrics else (recipe["tta_flip"] or recipe["tta_shift"]),
            "load": round(load, 1), "stdout": proc.stdout}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--budgets", default="20")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--extra", default="", help="more `sortnet train` options, e.g. '--model cnn-small'")
    p.add_argument("--json")
    p.add_argument("--show-output", action="store_true", help="print each run's stdout")
    args = p.parse_args(argv)
    data = resolve_data(args.data)
    runs = []
    for seed in range(args.seeds):
        for budget in [float(b) for b in args.budgets.split(",")]:
            r = run_once(data, budget, seed, args.extra.split())
            runs.append(r)
            print(f"[{time.strftime('%H:%M:%S')}] {json.dumps({k: v for k, v in r.items() if k != 'stdout'})}",
                  file=sys.stderr)
            if args.show_output and "stdout" in r:
                print(r["stdout"], file=sys.stderr)
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}; CPU {cpu_summary()}; {os.cpu_count()} CPUs; "
          f"`sortnet train {args.data} --time-budget B --seed S --no-progress {args.extra}`\n")
    print("| budget B (s) | seed | command wall (s) | wall / B | training began (s) | training ended (s) | "
          "model file written (s) | model | steps planned | epochs | TTA | test accuracy | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        if "error" in r:
            print(f"| {r['budget']:g} | {r['seed']} | error: {r['error'][-120:]!r} |")
            continue
        print(f"| {r['budget']:g} | {r['seed']} | {r['wall']:.1f} | {r['wall'] / r['budget']:.3f} | "
              f"{r['training_began']} | {r['training_ended']} | {r['model_written']} | {r['model']} | "
              f"{r['steps_planned']} | {r['epochs']} | {r['tta']} | {r['test_acc']:.4f} | {r['load']} |")
    ok = [r for r in runs if "error" not in r]
    if ok:
        ratios = [r["wall"] / r["budget"] for r in ok]
        print(f"\nwall / budget: {min(ratios):.3f}-{max(ratios):.3f} (mean {statistics.mean(ratios):.3f}); "
              f"within [0.95, 1.0]: {sum(0.95 <= x <= 1.0 for x in ratios)}/{len(ratios)}")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    return 0 if len(ok) == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
