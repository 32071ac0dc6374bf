"""Learning-rate schedules as multipliers of the peak lr, per optimizer step.

`Schedule` is a callable object (not a closure) so its length can change mid-run — a time budget
that falls behind shortens the run and the schedule still ends at 0 — and so LambdaLR saves it
in checkpoints.

Usage:
    schedule = Schedule("onecycle", total_steps=1000, warmup=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    schedule.total_steps = 800        # shorten: the decay steepens and still reaches 0 at step 800
"""
from __future__ import annotations

import math


class Schedule:
    def __init__(self, kind: str, total_steps: int, warmup: float) -> None:
        self.kind, self.warmup = kind, warmup
        self.total_steps = max(1, int(total_steps))
        # warmup length is fixed at the start: shortening the run later must not re-open the warmup
        self.warmup_steps = max(1, int(round(warmup * self.total_steps))) if warmup > 0 else 0

    def __call__(self, step: int) -> float:
        """step -> factor in [0, 1]: linear warmup, then linear (onecycle) or cosine decay to 0 at total_steps."""
        warm = min(self.warmup_steps, max(0, self.total_steps - 1))
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, self.total_steps - warm))
        if self.kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0 - progress


def lr_multiplier(kind: str, total_steps: int, warmup: float) -> Schedule:
    return Schedule(kind, total_steps, warmup)
