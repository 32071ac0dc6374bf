"""The fastest memory layout for this machine kind and workload, measured once and remembered.

Convolutions on a CPU run through oneDNN, whose fastest layout depends on the instruction set (AVX2,
AVX-512, AMX), the precision and the layer shapes: channels_last (NHWC) was 1.2-1.6x faster than NCHW
for sortnet's whitened CNNs on an AVX2-only EPYC in fp32 (BENCHMARKS.md), but that is a measurement, not
a law. `choose_layout` times a few training steps in both layouts, interleaved so that other programs on
the machine slow both alike, and caches the winner per machine kind (CPU model, instruction-set flags,
core count, torch version) and workload (model, input shape, batch, precision) in
$SORTNET_CACHE/fastpath.json, so later runs on the same kind of machine pay nothing. When there is no
time to measure (a short budget) and nothing is cached, channels_last is used.

Usage:
    channels_last, why = choose_layout(trainer, may_measure=True)
    trainer.set_channels_last(channels_last)
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from sortnet.atomic import atomic_write_text
from sortnet.parallel import usable_cores
from sortnet.training.trainer import Trainer

CACHE_FILE = "fastpath.json"
ROUNDS = 2  # interleaved rounds of (channels_last, NCHW) steps
STEPS_PER_ROUND = 2
WIN_MARGIN = 0.95  # NCHW must be this much faster (ratio of medians) to replace the default
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "asimd", "sve")


def cache_path() -> Path:
    env = os.environ.get("SORTNET_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "sortnet") / CACHE_FILE


def machine_kind() -> str:
    """CPU model, the instruction-set flags that change kernel choice, usable cores, torch version."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = "+".join(f for f in ISA_FLAGS if f in flags) or "baseline"
    return f"{model}|{isa}|{usable_cores()} cores|torch {torch.__version__}"


def workload_key(trainer: Trainer, with_precision: bool = True) -> str:
    """model|input shape|batch|precision|device (precision left out for a choice between precisions)."""
    shape = tuple(trainer.x[torch.arange(1)].shape[1:])
    dtype = "fp32" if trainer.dtype is None else str(trainer.dtype).removeprefix("torch.")
    dtype = f"|{dtype}" if with_precision else ""
    return f"{trainer.recipe.model}|{shape}|batch {trainer.batch_size}{dtype}|{trainer.device.type}"


def read_cache() -> dict:
    """{machine kind: {key: result}} from $SORTNET_CACHE/fastpath.json ({} when missing or unreadable)."""
    try:
        return json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}


def choose_layout(trainer: Trainer, may_measure: bool) -> tuple[bool, str]:
    """(channels_last, why): the cached or measured faster layout; channels_last when neither is possible."""
    if trainer.device.type != "cpu":
        return True, "channels_last (GPU)"
    kind, work = machine_kind(), workload_key(trainer)
    cached = read_cache().get(kind, {}).get(work)
    if cached is not None:
        return bool(cached["channels_last"]), f"{_describe(cached)}; measured earlier on this machine kind)"
    if not may_measure:
        return True, "channels_last (default; not measured on this machine kind yet)"
    times = {"channels_last": [], "nchw": []}
    for _ in range(ROUNDS):
        times["channels_last"] += trainer.time_steps(STEPS_PER_ROUND, 1, channels_last=True)
        times["nchw"] += trainer.time_steps(STEPS_PER_ROUND, 1, channels_last=False)
    ms = {k: 1000 * sorted(v)[len(v) // 2] for k, v in times.items()}
    result = {"channels_last": not ms["nchw"] < WIN_MARGIN * ms["channels_last"], "ms": ms}
    remember(kind, work, result)
    return result["channels_last"], f"{_describe(result)}; measured now)"


def _describe(result: dict) -> str:
    ms = result["ms"]
    return (f"{'channels_last' if result['channels_last'] else 'NCHW'} ({ms['channels_last']:.0f} ms/step "
            f"channels_last vs {ms['nchw']:.0f} NCHW")


def remember(kind: str, work: str, result: dict) -> None:
    """Store one result under (machine kind, key), atomically; a read-only home only loses the memory."""
    cache = read_cache()
    cache.setdefault(kind, {})[work] = result
    try:
        cache_path().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_path(), json.dumps(cache, indent=1))
    except OSError:
        pass  # a read-only home: measure again next time
