"""Time and size of `sortnet report` on a built-in test split (target: Fashion-MNIST's 10k images <= 60 s on 2 cores).

Two measurements per runtime, in one run: the real CLI in a fresh process (`sortnet report MODEL DATA`, wall
clock including Python/torch start-up, what a user waits for) and the same work in-process via
`sortnet.reporting.make_report` with the seconds of each step. Prints a markdown table plus the machine
(CPU model and SIMD flags from /proc/cpuinfo, cores, torch threads), the date and the load average before
and after, since other jobs on the same cores slow everything down.

Usage:
    python benchmarks/bench_report.py --model runs/fm/model.safetensors [--data fashion-mnist]
        [--runtimes auto,torch] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

SIMD = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def machine() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cores": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
        info["simd"] = [f for f in SIMD if f in flags]
    except (OSError, StopIteration):
        pass
    return info


def cli_wall(model: str, data: str, runtime: str, out: Path) -> tuple[float, str]:
    script = Path(sys.executable).parent / "sortnet"
    cmd = ([str(script)] if script.exists() else [sys.executable, "-m", "sortnet"]) + [
        "report", model, data, "--out", str(out), "--runtime", runtime, "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, proc.stdout.strip()


def in_process(model: str, data: str, runtime: str, out: Path) -> dict:
    from sortnet.reporting import make_report

    t0 = time.perf_counter()
    r = make_report(model, data, out, runtime=runtime, progress=False)
    return {"wall_s": time.perf_counter() - t0, "collect_s": r.collect_seconds,
            "steps_s": {k: round(v, 2) for k, v in r.step_seconds.items()}, "html_bytes": r.html_bytes,
            "accuracy": r.scores["accuracy"], "images": r.scores["num_images"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a trained model file")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--runtimes", default="auto,torch", help="comma-separated: auto, torch, onnx")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    from sortnet.device import use_all_cores

    use_all_cores()
    rows, load_before = [], os.getloadavg()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in args.runtimes.split(","):
            wall, line = cli_wall(args.model, args.data, runtime, Path(tmp) / f"cli-{runtime}")
            res = in_process(args.model, args.data, runtime, Path(tmp) / f"api-{runtime}")
            rows.append({"runtime": runtime, "cli_wall_s": round(wall, 1), "cli_output": line, **res})
    result = {"date": started, "command": " ".join(sys.argv), "machine": machine(),
              "load_before": [round(v, 2) for v in load_before],
              "load_after": [round(v, 2) for v in os.getloadavg()], "rows": rows}
    print(f"{started}  load average before {result['load_before']}, after {result['load_after']}")
    print(json.dumps(result["machine"]))
    print("| runtime | images | CLI wall (s) | in-process (s) | load + predict (s) | sections (s) | HTML (MB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        steps = ", ".join(f"{k} {v}" for k, v in r["steps_s"].items())
        print(f"| {r['runtime']} | {r['images']:,} | {r['cli_wall_s']} | {r['wall_s']:.1f} | {r['collect_s']:.1f} | "
              f"{steps} | {r['html_bytes'] / 1e6:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
