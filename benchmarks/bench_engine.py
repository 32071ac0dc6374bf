"""Engine micro-benchmarks: matmul peak, training throughput and FLOP utilisation, per-epoch time of the
default recipes on Fashion-MNIST-shaped (28x28x1) and CIFAR-shaped (32x32x3) data.

Usage:
    python benchmarks/bench_engine.py                     # markdown table on stdout
    python benchmarks/bench_engine.py --models cnn-small,cnn --steps 20 --json out.json
    python benchmarks/bench_engine.py --models cnn-tiny --profile 8     # + where a step's time goes (top 8 ops)
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from sortnet.config import TrainConfig
from sortnet.data.dataset import DataBundle, ImageSet
from sortnet.data.preprocess import Preprocessing
from sortnet.models.registry import create_model
from sortnet.device import resolve_precision, use_all_cores
from sortnet.runs.recipe import resolve_recipe
from sortnet.training.trainer import Trainer


def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def _bundle(n: int, size: int, channels: int, classes: int = 10) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8).numpy()
    y = (torch.arange(n) % classes).numpy()
    s = ImageSet(x, y, [str(i) for i in range(classes)])
    prep = Preprocessing(size, channels, (0.5,) * channels, (0.25,) * channels)
    return DataBundle(s, None, None, s.classes, prep, "folder:synthetic")


def train_step_flops(trainer: Trainer) -> float:
    """FLOPs of one training step (forward + backward), counted by torch's FlopCounterMode."""
    idx = torch.arange(trainer.batch_size)
    xb = trainer.augment(trainer.x[idx], idx, torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        logits = trainer.model(xb)
        torch.nn.functional.cross_entropy(logits.float(), trainer.y[idx]).backward()
    trainer.opt.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def bench_model(arch: str, size: int, channels: int, precision: str, steps: int, epoch_images: int) -> dict:
    bundle = _bundle(4096, size, channels)
    cfg = TrainConfig(model=arch, epochs=1, precision=precision)
    recipe = resolve_recipe(cfg, bundle, torch.device("cpu"))
    model = create_model(arch, channels, 10, size, bundle.preprocessing.mean, bundle.preprocessing.std)
    model.init_from_data(torch.as_tensor(bundle.train.images[:2000]))
    dtype = resolve_precision(precision, torch.device("cpu"))
    trainer = Trainer(model, bundle.train, None, recipe, device=torch.device("cpu"), dtype=dtype)
    flops = train_step_flops(trainer)
    gen = torch.Generator().manual_seed(1)
    times = []
    for i in range(steps + 3):
        idx = torch.randint(0, len(trainer.y), (trainer.batch_size,), generator=gen)
        t0 = time.perf_counter()
        trainer.train_step(trainer.augment(trainer.x[idx], idx, gen), trainer.y[idx])
        if i >= 3:
            times.append(time.perf_counter() - t0)
    step = sorted(times)[len(times) // 2]
    return {"model": arch, "input": f"{size}x{size}x{channels}", "precision": precision,
            "batch": trainer.batch_size, "images_per_s": trainer.batch_size / step,
            "gflops_per_s": flops / step / 1e9, "epoch_seconds": epoch_images / (trainer.batch_size / step)}


def step_profile(arch: str, size: int, channels: int, precision: str, steps: int, top: int) -> list[tuple[str, float]]:
    """The ops taking most of a training step's CPU time (self time, share of all ops) over `steps` steps."""
    from torch.profiler import ProfilerActivity, profile

    bundle = _bundle(60_000, size, channels)  # Fashion-MNIST's size: the recipe's large-data batch (128)
    recipe = resolve_recipe(TrainConfig(model=arch, epochs=1, precision=precision), bundle, torch.device("cpu"))
    model = create_model(arch, channels, 10, size, bundle.preprocessing.mean, bundle.preprocessing.std)
    model.init_from_data(torch.as_tensor(bundle.train.images[:2000]))
    trainer = Trainer(model, bundle.train, None, recipe, device=torch.device("cpu"),
                      dtype=resolve_precision(precision, torch.device("cpu")))
    gen = torch.Generator().manual_seed(1)

    def step():
        idx = torch.randint(0, len(trainer.y), (trainer.batch_size,), generator=gen)
        trainer.train_step(trainer.augment(trainer.x[idx], idx, gen), trainer.y[idx])

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [(e.key, e.self_cpu_time_total / total) for e in events[:top]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="cnn-small,cnn")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--profile", type=int, default=0, help="also print the N ops taking most of a 28 px step")
    p.add_argument("--json")
    args = p.parse_args()
    use_all_cores()
    peak = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    rows = []
    for arch in args.models.split(","):
        for size, ch, n in ((28, 1, 60_000), (32, 3, 50_000)):
            for prec in ("fp32", "bf16"):
                r = bench_model(arch, size, ch, prec, args.steps, n)
                r["utilisation_of_bf16_matmul"] = r["gflops_per_s"] / peak["bf16"]
                rows.append(r)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"matmul 2048x2048: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s\n")
    print("| model | input | precision | batch | images/s | GFLOP/s | % of bf16 matmul | s per epoch |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['input']} | {r['precision']} | {r['batch']} | {r['images_per_s']:.0f} | "
              f"{r['gflops_per_s']:.0f} | {100 * r['utilisation_of_bf16_matmul']:.0f}% | {r['epoch_seconds']:.1f} |")
    for arch in (args.models.split(",") if args.profile else []):
        for prec in ("fp32", "bf16"):
            ops = step_profile(arch, 28, 1, prec, args.steps, args.profile)
            print(f"\n{arch} 28x28x1 {prec}, self CPU time of {args.steps} steps: "
                  + ", ".join(f"{name} {share:.0%}" for name, share in ops))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak": peak, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
