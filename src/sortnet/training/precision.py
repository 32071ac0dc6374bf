"""--precision auto on a CPU: bf16 only where it measured faster here and trained like fp32; remembered.

bf16 autocast is not free speed on a CPU: at the small sizes of sortnet's own nets it bought nothing on an
AVX-512-bf16 machine (issue 24: cnn-tiny ~3,200 images/s in both), and a numerics problem in bf16 shows up as
a run that silently stays at chance. So `auto` times a few real training steps of the run's model, in fp32
and in bf16, interleaved so that other programs on the machine slow both alike, from the same weights on the
same batches at the peak learning rate, and keeps bf16 only when its median step is WIN_MARGIN faster in
the median round AND its losses are finite and no worse than fp32's. The result is remembered per machine kind and
workload (model, input shape, batch) in $SORTNET_CACHE/fastpath.json (training/fastpath.py), so every later
run of that workload on this machine kind makes the same choice without measuring: runs of fixed epochs stay
repeatable. CPUs without native bf16 stay fp32 without measuring (emulated bf16 is several times slower);
GPUs keep their hardware rule (device.resolve_precision). An explicit --precision is always obeyed.

Usage:
    if measures_precision(cfg.precision, device):
        dtype, why = choose_precision(trainer)        # torch.bfloat16 or None (fp32)
        trainer.set_precision(dtype)
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch

from sortnet.device import cpu_supports_bf16
from sortnet.training.fastpath import machine_kind, read_cache, remember, workload_key
from sortnet.training.trainer import Trainer

ROUNDS = 3  # interleaved rounds of (fp32, bf16) steps: the median round decides, so one burst of load does not
STEPS_PER_ROUND, WARMUP_STEPS = 3, 1  # timed and untimed steps per round and precision
WIN_MARGIN = 0.9  # bf16's median step must be at most this fraction of fp32's (10% faster) to be kept
LOSS_SLACK, LOSS_SLACK_ABS = 1.1, 0.05  # bf16's mean probe loss may exceed fp32's by 10% + 0.05, no more
KEY_PREFIX = "precision|"
PROBE_STEPS = ROUNDS * 2 * (STEPS_PER_ROUND + WARMUP_STEPS)  # training steps a measurement takes

# probe(trainer, dtype) -> (seconds per step, loss per step) of one round; default Trainer.probe_steps
Probe = Callable[[Trainer, "torch.dtype | None"], tuple[list[float], list[float]]]


def measures_precision(name: str, device: torch.device, native_bf16: bool | None = None) -> bool:
    """True where the choice is made by measuring: --precision auto, a CPU, native bf16 instructions."""
    native = cpu_supports_bf16() if native_bf16 is None else native_bf16
    return name == "auto" and device.type == "cpu" and native


def _probe(trainer: Trainer, dtype: torch.dtype | None) -> tuple[list[float], list[float]]:
    return trainer.probe_steps(STEPS_PER_ROUND, WARMUP_STEPS, dtype=dtype)


def remembered_precision(trainer: Trainer) -> tuple[torch.dtype | None, str] | None:
    """(dtype, why) remembered for this machine kind and workload, or None when never measured."""
    cached = read_cache().get(machine_kind(), {}).get(_key(trainer))
    if cached is None:
        return None
    return _dtype(cached), f"precision: {_describe(cached)}; measured earlier on this machine kind)"


def choose_precision(trainer: Trainer, max_seconds: float = math.inf, step_seconds: float | None = None,
                     probe: Probe | None = None,
                     clock: Callable[[], float] = time.monotonic) -> tuple[torch.dtype | None, str]:
    """(torch.bfloat16 or None for fp32, why): the remembered choice for this machine kind and workload, else
    measured now and remembered. max_seconds bounds the measurement (a short time budget): when the steps it
    needs would take longer at step_seconds (an fp32 step measured already), or the first round shows the
    whole would, fp32 is used, unmeasured and not remembered."""
    remembered = remembered_precision(trainer)
    if remembered is not None:
        return remembered
    if step_seconds is not None and PROBE_STEPS * step_seconds > max_seconds:
        return None, _unmeasured(PROBE_STEPS * step_seconds, max_seconds)
    probe = probe or _probe
    times, losses = {"fp32": [], "bf16": []}, {"fp32": [], "bf16": []}  # times: one list per round
    t0 = clock()
    for r in range(ROUNDS):
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            t, loss = probe(trainer, dtype)
            times[name].append(t)
            losses[name] += loss
        if r == 0 and (clock() - t0) * ROUNDS > max_seconds:
            return None, _unmeasured((clock() - t0) * ROUNDS, max_seconds)
    result = judge(times, losses)
    remember(machine_kind(), _key(trainer), result)
    return _dtype(result), f"precision: {_describe(result)}; measured now)"


def _key(trainer: Trainer) -> str:
    return KEY_PREFIX + workload_key(trainer, with_precision=False)


def _unmeasured(seconds: float, max_seconds: float) -> str:
    return (f"precision: fp32 (bf16 not measured: ~{seconds:.1f}s of steps would not fit {max_seconds:.1f}s of "
            "the budget)")


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def judge(times: dict[str, list[list[float]]], losses: dict[str, list[float]]) -> dict:
    """The remembered result: bf16 when its median step is WIN_MARGIN of fp32's in the median round (a burst
    of another program in one round does not decide) and its losses are as good. times: per precision, per
    round."""
    ms = {k: 1000 * _median([t for r in v for t in r]) for k, v in times.items()}
    mean = {k: sum(v) / len(v) if v and all(map(math.isfinite, v)) else math.nan for k, v in losses.items()}
    trains = math.isfinite(mean["bf16"]) and math.isfinite(mean["fp32"]) and \
        mean["bf16"] <= LOSS_SLACK * mean["fp32"] + LOSS_SLACK_ABS
    faster = _median([_median(b) / _median(f) for f, b in zip(times["fp32"], times["bf16"])]) <= WIN_MARGIN
    return {"precision": "bf16" if faster and trains else "fp32", "ms": ms, "faster": faster, "trains": trains,
            "loss": {k: (round(v, 4) if math.isfinite(v) else None) for k, v in mean.items()}}


def _dtype(result: dict) -> torch.dtype | None:
    return torch.bfloat16 if result.get("precision") == "bf16" else None


def _describe(result: dict) -> str:
    ms, loss = result["ms"], result.get("loss", {})
    if not result.get("trains", True):
        why = (f"bf16's probe loss {loss.get('bf16')} vs fp32's {loss.get('fp32')}: bf16 does not train as well "
               "here")
    elif not result.get("faster", True):
        why = f"bf16 not {1 - WIN_MARGIN:.0%} faster"
    else:
        why = "bf16 faster, same loss"
    return (f"{result['precision']} ({ms['bf16']:.0f} ms/step bf16 vs {ms['fp32']:.0f} fp32 with native bf16 "
            f"instructions, {why}")
