"""Feature extraction against the machine's limit: images/s of EfficientNet-Lite0/1/2 vs their FLOPs and the
measured matmul rate (fp32 and bf16), and the photo decoding rate beside it (issue 23).

For each backbone at its own resolution: forward multiply-adds per image (conv/linear hooks), images/s through
sortnet's FeatureExtractor (onnxruntime fp32 on CPUs; PyTorch eager fp32 and bf16 autocast for comparison),
and the ratio achieved FLOP/s / matmul FLOP/s (2 FLOPs per multiply-add). Matmul: a 2048^2 float32 and
bfloat16 torch.matmul on every core, best of 5. Decoding: PIL open + RGB + resize of the hymenoptera JPEGs on
one core (what prepare does per image). Prints JSON with load averages.

Usage:
    python benchmarks/bench_extract.py --images 48 --json /tmp/bench_extract.json
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
HYMENOPTERA = REPO.parent / "shared" / "data" / "hymenoptera"


def matmul_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def macs(model: torch.nn.Module, size: int) -> int:
    total = 0

    def count(m, i, o):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            total += o.numel() * m.in_channels // m.groups * int(np.prod(m.kernel_size))
        elif isinstance(m, torch.nn.Linear):
            total += o.numel() * m.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return total


def rate(extractor, images: np.ndarray) -> float:
    extractor.extract(images[:4], ["orig"])  # warm-up (and the ONNX export / session)
    t0 = time.perf_counter()
    extractor.extract(images, ["orig"])
    return len(images) / (time.perf_counter() - t0)


def decode_rate(size: int, limit: int = 60) -> float:
    from PIL import Image

    files = sorted(HYMENOPTERA.glob("train/*/*.jpg"))[:limit]
    t0 = time.perf_counter()
    for f in files:
        with Image.open(f) as im:
            im.convert("RGB").resize((size, size), Image.BILINEAR)
    return len(files) / (time.perf_counter() - t0)


def main() -> None:
    from sortnet.models.efficientnet_lite import LITE_CONFIGS, LITE_MEAN, LITE_STD
    from sortnet.models.registry import create_model
    from sortnet.transfer.extract import FeatureExtractor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    out = {"load_before": os.getloadavg(), "threads": torch.get_num_threads(),
           "matmul_gflops": {"fp32": matmul_rate(torch.float32) / 1e9, "bf16": matmul_rate(torch.bfloat16) / 1e9}}
    rows = []
    for arch, cfg in LITE_CONFIGS.items():
        size = cfg.img_size
        model = create_model(arch, 3, 10, size, LITE_MEAN, LITE_STD).eval()
        images = np.random.default_rng(0).integers(0, 256, (a.images, 3, size, size), dtype=np.uint8)
        m = macs(model.body, size)
        row = {"arch": arch, "px": size, "gmacs": m / 1e9, "decode_img_s": decode_rate(size)}
        for name, ex in (("onnx_fp32", FeatureExtractor(model, torch.device("cpu"))),
                         ("torch_fp32", FeatureExtractor(model, torch.device("cpu"), runtime="torch")),
                         ("torch_bf16", FeatureExtractor(model, torch.device("cpu"), torch.bfloat16, runtime="torch"))):
            r = rate(ex, images[: a.images if name == "onnx_fp32" else a.images // 2])
            peak = out["matmul_gflops"]["bf16" if "bf16" in name else "fp32"] * 1e9
            row[name] = {"img_s": round(r, 2), "achieved_gflops": round(r * 2 * m / 1e9, 1),
                         "share_of_matmul": round(r * 2 * m / peak, 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out["rows"], out["load_after"] = rows, os.getloadavg()
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
