"""The fp32 CPU path, measured: memory layout, thread count, OpenMP waiting and torch.compile for sortnet's CNNs.

Each variant trains the same model on synthetic uint8 batches (augmentation + forward + backward + SGD step,
exactly the Trainer's step) and reports the median seconds per step. Variants are interleaved round by
round so that other programs on the machine slow them alike; prints the CPU flags that matter, the load
average before and after, and a markdown table. OpenMP's wait policy is fixed when torch loads, so the
"passive vs spinning" comparison runs this script again in a subprocess with OMP_WAIT_POLICY set.

Usage:
    python benchmarks/bench_fp32.py --models cnn-tiny,cnn-small,cnn --rounds 5
    python benchmarks/bench_fp32.py --compile          # + torch.compile (minutes of compiling on 2 cores)
    python benchmarks/bench_fp32.py --wait-policies    # spinning vs passive OpenMP threads (subprocesses)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_summary() -> dict:
    info = {"model": "?", "flags": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if line.startswith("model name") and info["model"] == "?":
            info["model"] = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            info["flags"] = [f for f in FLAGS_OF_INTEREST if f in flags]
            break
    return info


def make_trainer(arch: str, channels: int, size: int, batch: int, channels_last: bool, compile_: bool):
    import numpy as np
    import torch

    from sortnet.data.dataset import ImageSet
    from sortnet.models.registry import create_model
    from sortnet.training.recipe import Recipe
    from sortnet.training.trainer import Trainer

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch * 4, channels, size, size), dtype=np.uint8)
    data = ImageSet(images, np.arange(len(images)) % 10, [str(i) for i in range(10)])
    recipe = Recipe(model=arch, epochs=1, batch_size=batch, lr=0.05, optimizer="sgd", weight_decay=5e-4,
                    schedule="onecycle", warmup=0.1, label_smoothing=0.0, flip=True, translate=0, rrc=False,
                    tta_flip=False, tta_shift=0)
    torch.manual_seed(0)
    model = create_model(arch, channels, 10, size, (0.3,) * channels, (0.3,) * channels)
    return Trainer(model, data, None, recipe, device=torch.device("cpu"), dtype=None, channels_last=channels_last,
                   compile=compile_)


def step_seconds(trainer, steps: int) -> list[float]:
    """Seconds of `steps` real steps (the compiled forward when compiled)."""
    import torch

    gen = torch.Generator().manual_seed(1)
    times = []
    for _ in range(steps):
        idx = torch.randint(0, len(trainer.y), (trainer.batch_size,), generator=gen)
        xb = trainer.augment(trainer.x[idx], idx, gen)
        t0 = time.perf_counter()
        trainer.train_step(xb, trainer.y[idx])
        times.append(time.perf_counter() - t0)
    return times


def run_variants(args) -> list[dict]:
    import torch

    cores = len(os.sched_getaffinity(0))
    variants = []
    for arch in args.models:
        for channels, size in args.shapes:
            for threads in sorted({cores, 1}, reverse=True):
                for cl in (True, False):
                    variants.append({"model": arch, "input": f"{size}x{size}x{channels}", "threads": threads,
                                     "layout": "channels_last" if cl else "NCHW", "compile": False,
                                     "_t": make_trainer(arch, channels, size, args.batch, cl, False)})
                if args.compile:
                    variants.append({"model": arch, "input": f"{size}x{size}x{channels}", "threads": threads,
                                     "layout": "channels_last", "compile": True,
                                     "_t": make_trainer(arch, channels, size, args.batch, True, True)})
    for v in variants:  # warm-up (and compilation, timed)
        torch.set_num_threads(v["threads"])
        t0 = time.perf_counter()
        step_seconds(v["_t"], 2)
        v["first_steps_seconds"] = round(time.perf_counter() - t0, 2)
        v["times"] = []
    for _ in range(args.rounds):
        for v in variants:
            torch.set_num_threads(v["threads"])
            v["times"] += step_seconds(v["_t"], args.steps)
    for v in variants:
        v["median_ms"] = round(1000 * statistics.median(v.pop("times")), 1)
        v["images_per_second"] = round(args.batch / (v["median_ms"] / 1000))
        v.pop("_t")
    return variants


def wait_policy_rows(args) -> list[dict]:
    rows = []
    for policy in ("ACTIVE", "PASSIVE"):
        env = dict(os.environ, OMP_WAIT_POLICY=policy)
        cmd = [sys.executable, __file__, "--models", ",".join(args.models), "--rounds", str(args.rounds),
               "--steps", str(args.steps), "--batch", str(args.batch), "--json-rows",
               "--shapes", ",".join(f"{c}x{s}" for c, s in args.shapes)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        rows += [dict(r, omp_wait_policy=policy) for r in json.loads(out.strip().splitlines()[-1])]
    return rows


def table(rows: list[dict]) -> str:
    keys = [k for k in rows[0] if k not in ("first_steps_seconds",)] + ["first_steps_seconds"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="cnn-tiny,cnn-small")
    p.add_argument("--shapes", default="1x28", help="CxSIZE list, e.g. 1x28,3x32")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--wait-policies", action="store_true")
    p.add_argument("--json-rows", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.models = args.models.split(",")
    args.shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    load_before = os.getloadavg()
    rows = wait_policy_rows(args) if args.wait_policies else run_variants(args)
    if args.json_rows:
        print(json.dumps(rows))
        return 0
    import torch

    print(f"date {time.strftime('%Y-%m-%d %H:%M %Z')}; CPU {cpu_summary()}; torch {torch.__version__}; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; batch {args.batch}; "
          f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
