"""The model ladder and an ensemble of seeds, timed as a user runs them, with the machine's state recorded.

`ladder`: runs `sortnet ladder DATA --time-budget B` as a subprocess (the whole command: start-up, data,
every rung, table and plot) and records its wall time against the budget next to the ladder's table.
`ensemble`: `sortnet train DATA --ensemble N --time-budget B` (N seeds sharing B), then the accuracy gain
of the ensemble over its best member (validation and test) and the 1-image CPU latency of one member vs the
ensemble (torch eager and onnxruntime, TTA views included, as `sortnet predict` runs them).
Both record date, CPU model and flags, core count and the load average at start and end.

Usage:
    python benchmarks/bench_compare.py ladder fashion-mnist --budget 10m --out runs/bench-ladder-fm
    python benchmarks/bench_compare.py ladder ../shared/data/hymenoptera --budget 5m --out runs/bench-ladder-hym
    python benchmarks/bench_compare.py ensemble fashion-mnist --members 3 --budget 9m --out runs/bench-ens-fm
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def machine() -> dict:
    info = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
            "loadavg_start": os.getloadavg()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
        info["simd_flags"] = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4")))
    except (OSError, StopIteration):
        pass
    return info


def sortnet_cmd() -> list[str]:
    script = Path(sys.executable).parent / "sortnet"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sortnet"]


def bench_ladder(args) -> dict:
    from sortnet.config import parse_duration

    cmd = sortnet_cmd() + ["ladder", args.data, "--time-budget", args.budget, "--out", args.out]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ladder failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rows = json.loads((Path(args.out) / "ladder.json").read_text())
    budget = parse_duration(args.budget)
    return {"command": " ".join(cmd), "wall_s": round(wall, 1), "budget_s": budget,
            "wall_over_budget": round(wall / budget, 3), "rows": rows}


def bench_ensemble(args) -> dict:

    from sortnet import train
    from sortnet.infer.latency import predict_latency_ms
    from sortnet.modelfile import load_model

    t0 = time.perf_counter()
    clf = train(args.data, out=args.out, ensemble=args.members, time_budget=args.budget, progress=False)
    wall = time.perf_counter() - t0
    member, member_meta = load_model(Path(args.out) / "member-1" / "model.safetensors")
    latency = {}
    for runtime in ("torch", "onnx"):
        one = predict_latency_ms(member, member_meta, runtime=runtime, seconds=5)["predict_latency_ms"]
        ens = predict_latency_ms(clf.model, clf.meta, runtime=runtime, seconds=5)["predict_latency_ms"]
        latency[runtime] = {"member_ms": one, "ensemble_ms": ens, "ratio": round(ens / one, 2)}
    return {"command": f"sortnet.train({args.data!r}, ensemble={args.members}, time_budget={args.budget!r})",
            "wall_s": round(wall, 1), "summary": clf.metrics["summary"], "latency": latency,
            "members": [m.arch for m in clf.meta.ensemble.members]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["ladder", "ensemble"])
    p.add_argument("data")
    p.add_argument("--budget", default="10m")
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--out", required=True)
    p.add_argument("--json", help="write the results here (default: OUT.json)")
    args = p.parse_args()
    info = machine()
    result = bench_ladder(args) if args.what == "ladder" else bench_ensemble(args)
    info["loadavg_end"] = os.getloadavg()
    out = {**info, **result}
    Path(args.json or f"{args.out.rstrip('/')}.json").write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=2, default=str))
    if "rows" in out:
        from sortnet.compare.table import format_table

        print(format_table(out["rows"]))


if __name__ == "__main__":
    main()
