"""Remembered step times: does the planner's measurement look like a passing load, and what to plan with then.

A time-budgeted run is planned from a few training steps timed at its start. When another program holds the
cores just then, the steps measure slow, and some choices made from them last the whole run: the width of the
network (model auto), the run's length class (short runs switch shifts and label smoothing off) and whether
test-time augmentation pays. The keeper (training/budget.py) later re-plans the number of steps and the thread
tuner (training/threads.py) the thread count, but those choices cannot change mid-run. So the planner keeps the
fastest step time it has measured per machine kind and workload (in $SORTNET_CACHE/fastpath.json) and, when a
new measurement is more than LOADED_RATIO slower, times the steps again a few times (within a small share of
the budget). If they are still slow the load is taken as passing: the plan uses the remembered step time (and
scales the evaluation estimate alike); the keeper shortens the run should the load stay.

Usage:
    costs, note = unloaded_costs(trainer, costs, lambda: measure(trainer), max_seconds=0.03 * budget)
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

from sortnet.training.fastpath import machine_kind, read_cache, remember, workload_key

LOADED_RATIO = 1.25  # a step this much slower than the fastest remembered one looks loaded
REMEASURES = 2  # extra timings, at most, before a slow measurement is taken as a passing load
PAUSE_SECONDS = 0.5  # between timings: a short burst of another program may end meanwhile
KEY_PREFIX = "step|"


def remembered_step(trainer) -> float | None:
    """The fastest step seconds measured on this machine kind for this workload, or None."""
    entry = read_cache().get(machine_kind(), {}).get(KEY_PREFIX + workload_key(trainer))
    return float(entry["seconds"]) if entry else None


def remember_step(trainer, seconds: float) -> None:
    """Keep the fastest step seconds seen (a quiet machine's speed), never a slower one."""
    known = remembered_step(trainer)
    if known is None or seconds < known:
        remember(machine_kind(), KEY_PREFIX + workload_key(trainer), {"seconds": round(seconds, 6)})


def unloaded_costs(trainer, costs, remeasure: Callable[[], object], max_seconds: float,
                   known: float | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> tuple[object, str | None]:
    """(costs to plan with, a note or None). costs: the planner's Costs (step, eval_image seconds...);
    remeasure() times them again; max_seconds bounds the extra timings; known: the remembered step seconds
    (default: looked up). The fastest step measured is remembered for the next run either way."""
    known = remembered_step(trainer) if known is None else known
    best, first = costs, costs.step
    if known is not None and costs.step > LOADED_RATIO * known:
        spent = 0.0
        for _ in range(REMEASURES):
            if spent + PAUSE_SECONDS + 2 * best.step * 4 > max_seconds:  # ~4 steps per timing (+ warm-up)
                break
            sleep(PAUSE_SECONDS)
            t0 = time.monotonic()
            again = remeasure()
            spent += PAUSE_SECONDS + time.monotonic() - t0
            best = again if again.step < best.step else best
            if best.step <= LOADED_RATIO * known:
                break
    remember_step(trainer, best.step)
    if known is None or first <= LOADED_RATIO * known:
        return best, None
    if best.step <= LOADED_RATIO * known:
        return best, (f"steps first measured at {first * 1000:.0f} ms looked loaded ({known * 1000:.0f} ms remembered "
                      f"on this machine kind); measured again: {best.step * 1000:.0f} ms")
    quiet = dataclasses.replace(best, step=known, eval_image=best.eval_image * known / best.step)
    return quiet, (f"steps measured at {best.step * 1000:.0f} ms look loaded (another program?): planned at the "
                   f"{known * 1000:.0f} ms remembered on this machine kind; the keeper shortens the run if the load "
                   "stays")
