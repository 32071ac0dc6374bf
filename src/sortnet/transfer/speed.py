"""How long a bundled backbone's feature extraction will take on this machine, predicted before any image is
decoded: forward multiply-adds per image (counted with hooks on the model) x images x views, over the
FLOP/s that extraction reached on this machine in past runs (every extraction records its images/s in
$SORTNET_CACHE/speed.json; the median of the last HISTORY), or, before any, the matmul rate measured now
(a 1024^2 float32 matmul on every core, ~0.1 s) x EXTRACT_EFFICIENCY, the share of it onnxruntime's
extraction of these depthwise-separable networks reaches (BENCHMARKS.md, benchmarks/bench_extract.py).

`auto` uses it to pick the photo backbone for a --time-budget: the strongest of BUNDLED_BACKBONES
(EfficientNet-Lite0 -> Lite1 -> Lite2, ImageNet top-1 75.1 / 76.7 / 77.6%) whose extraction is predicted
to take at most BACKBONE_EXTRACT_SHARE of the budget; the rest of the budget is left for the head and
partial fine-tuning.

Usage:
    arch, why = budget_backbone(images=3400, views=2, budget=300.0)
"""
from __future__ import annotations

import functools
import json
import math
import statistics
import time
from pathlib import Path

import torch

from sortnet.models.macs import module_macs

BUNDLED_BACKBONES = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
EXTRACT_EFFICIENCY = 0.25  # achieved / matmul FLOP/s of onnxruntime fp32 extraction: 0.24-0.33 measured (BENCHMARKS.md, "issue 23")
BACKBONE_EXTRACT_SHARE = 0.25
HISTORY = 9  # past extraction rates kept ($SORTNET_CACHE/speed.json)


@functools.lru_cache(maxsize=1)
def matmul_flops(n: int = 1024, repeats: int = 3) -> float:
    """float32 FLOP/s of torch.matmul on every core (best of `repeats`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


@functools.lru_cache(maxsize=8)
def forward_macs(arch: str, img_size: int) -> int:
    """Multiply-adds of one forward pass of arch's body at img_size."""
    from sortnet.models.registry import create_model

    return module_macs(create_model(arch, 3, 2, img_size, (0.5,) * 3, (0.25,) * 3).body, (3, img_size, img_size))


def _speed_file() -> Path:
    from sortnet.data.filecache import cache_root

    return cache_root() / "speed.json"


@functools.lru_cache(maxsize=8)
def front_macs(arch: str, img_size: int, split: int) -> int:
    """Multiply-adds of the front of arch's body before its last `split` blocks (partial fine-tuning)."""
    from sortnet.models.registry import create_model

    front, _ = create_model(arch, 3, 2, img_size, (0.5,) * 3, (0.25,) * 3).body.split(split)
    return module_macs(front, (3, img_size, img_size))


def record_extraction(arch: str, img_size: int, images_per_second: float, split: int | None = None) -> None:
    """Remember an extraction's speed on this machine (the last HISTORY kept); only img/s is stored now, the
    multiply-adds are counted when a prediction needs them (a default run pays nothing for this)."""
    from sortnet.atomic import atomic_write_text

    entry = {"arch": arch, "img_size": img_size, "split": split, "img_s": images_per_second}
    past = _records()
    try:
        atomic_write_text(_speed_file(), json.dumps({"extractions": (past + [entry])[-HISTORY:]}))
    except OSError:
        pass


def _records() -> list[dict]:
    try:
        past = json.loads(_speed_file().read_text()).get("extractions", [])
        return [r for r in past if isinstance(r, dict) and {"arch", "img_size", "img_s"} <= set(r)]
    except (OSError, ValueError, AttributeError):
        return []


def _flops(record: dict) -> float | None:
    try:
        split = record.get("split")
        macs = forward_macs(record["arch"], int(record["img_size"])) if split is None else \
            front_macs(record["arch"], int(record["img_size"]), int(split))
        return float(record["img_s"]) * 2 * macs
    except Exception:  # noqa: BLE001 - a record of a model this sortnet no longer has: ignored
        return None


def extraction_flops() -> tuple[float, str]:
    """(expected extraction FLOP/s here, where the number comes from): the median of past extractions on this
    machine, else the matmul rate measured now x EXTRACT_EFFICIENCY."""
    past = [f for f in map(_flops, _records()) if f]
    if past:
        return statistics.median(past), f"{len(past)} past extraction(s) here"
    return matmul_flops() * EXTRACT_EFFICIENCY, "the matmul rate measured now"


def predicted_extract_seconds(arch: str, images: int, views: int) -> float:
    from sortnet.models.registry import model_defaults

    size = model_defaults(arch, pretrained=True).img_size
    return images * views * 2 * forward_macs(arch, size) / extraction_flops()[0]


def budget_backbone(images: int, views: int, budget: float, available=lambda arch: True) -> tuple[str, str]:
    """(the strongest bundled backbone whose extraction fits BACKBONE_EXTRACT_SHARE of budget, why)."""
    chosen, notes = BUNDLED_BACKBONES[0], []
    for arch in BUNDLED_BACKBONES:
        if not available(arch):
            continue
        s = predicted_extract_seconds(arch, images, views)
        notes.append(f"{arch.removeprefix('efficientnet-')} ~{s:.0f}s")
        if s <= BACKBONE_EXTRACT_SHARE * budget:
            chosen = arch
    return chosen, (f"predicted extraction of {images} images x {views} views ({', '.join(notes)}, from "
                    f"{extraction_flops()[1]}; <= {BACKBONE_EXTRACT_SHARE:.0%} of the {budget:g}s budget wanted)")
