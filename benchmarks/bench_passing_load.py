"""A time-budgeted run planned under a passing load: what it chose and what it reached, against a quiet run.

Three runs of `sortnet train DATA --time-budget B` (the real CLI, a subprocess each), in this order:
  quiet       nothing added; its measurements fill a fresh cache folder ($SORTNET_CACHE: precision, memory
              layout, the machine's step times), as a user's earlier run on this machine would have
  loaded      CPU-burning processes (one per core) during the first LOAD_SHARE of the budget, same cache:
              the planner sees steps much slower than remembered (training/steptime.py)
  loaded-new  the same load with an empty cache: a machine kind's first run, i.e. the plan made from what
              was measured under the load (the behaviour before issue 24)
For each: the model (width) chosen, the planned steps and epochs, test-time augmentation, the test accuracy,
the planner's notes about precision / load / layout, the command's wall time, and the load average at launch
(the machine may be shared: compare runs of the same invocation, and say the load).

Usage:
    python benchmarks/bench_passing_load.py --data fashion-mnist --budget 240
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_budget import resolve_data, sortnet_command  # noqa: E402
from bench_fp32 import cpu_summary  # noqa: E402

LOAD_SHARE = 0.2  # of the budget, from launch, with the burners running
NOTE_WORDS = ("precision:", "loaded", "measured again", "chosen for the budget", "memory layout", "time budget")


def burners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def run(data: str, budget: float, cache: Path, load: bool, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="sortnet-load-") as tmp:
        out = Path(tmp) / "run"
        cmd = sortnet_command() + ["train", data, "--time-budget", f"{budget:g}s", "--out", str(out),
                                   "--seed", str(seed)]
        env = dict(os.environ, SORTNET_CACHE=str(cache))
        loadavg = os.getloadavg()[0]
        t0 = time.monotonic()
        procs = burners(os.cpu_count() or 2) if load else []
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if procs:
            try:
                proc.wait(timeout=LOAD_SHARE * budget)
            except subprocess.TimeoutExpired:
                pass
            for p in procs:
                p.kill()
                p.wait()
        stdout = proc.communicate()[0]
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            return {"error": stdout[-600:], "load_avg": loadavg}
        metrics = json.loads((out / "metrics.json").read_text())
        recipe = json.loads((out / "run.json").read_text())["recipe"]
    notes = [line.strip() for line in stdout.splitlines() if any(w in line for w in NOTE_WORDS)]
    model_line = next((line.strip() for line in stdout.splitlines() if line.startswith("model:")), "")
    return {"wall": round(wall, 1), "model": recipe["model"], "steps_planned": recipe["total_steps"],
            "epochs": metrics["epochs"], "translate": recipe["translate"],
            "label_smoothing": recipe["label_smoothing"], "tta": bool(recipe["tta_flip"] or recipe["tta_shift"]),
            "test_acc": metrics.get("test", {}).get("accuracy"), "load_avg": round(loadavg, 1),
            "model_line": model_line, "notes": notes}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--budget", type=float, default=240.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    data = resolve_data(args.data)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="sortnet-cache-") as c1, \
            tempfile.TemporaryDirectory(prefix="sortnet-cache-") as c2:
        for name, cache, load in (("quiet", c1, False), ("loaded", c1, True), ("loaded-new", c2, True)):
            runs[name] = run(data, args.budget, Path(cache), load, args.seed)
            print(f"[{time.strftime('%H:%M:%S')}] {name}: {json.dumps(runs[name])}", file=sys.stderr, flush=True)
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}; CPU {cpu_summary()}; {os.cpu_count()} CPUs; "
          f"`sortnet train {args.data} --time-budget {args.budget:g}s --seed {args.seed}`; load: "
          f"{os.cpu_count()} busy-loop processes for the first {LOAD_SHARE:.0%} of the budget\n")
    print("| run | load avg at launch | model | steps planned | epochs | shifts / smoothing | TTA | test accuracy "
          "| wall (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        if "error" in r:
            print(f"| {name} | {r['load_avg']} | error: {r['error'][-150:]!r} |")
            continue
        acc = f"{r['test_acc']:.4f}" if r["test_acc"] is not None else "-"
        print(f"| {name} | {r['load_avg']} | {r['model']} | {r['steps_planned']} | {r['epochs']} | "
              f"{r['translate']} px / {r['label_smoothing']:g} | {r['tta']} | {acc} | {r['wall']} |")
    for name, r in runs.items():
        print(f"\n{name}:\n" + "\n".join(f"    {n}" for n in r.get("notes", []) + [r.get("model_line", "")]))
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    return 0 if all("error" not in r for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
