"""Learning-rate schedules as multipliers of the peak lr, per optimizer step.

`Schedule` is a callable object (not a closure) so its length can change mid-run — a time budget
re-plans the run shorter when the machine slows down and longer when it is ahead — and so LambdaLR
saves it in checkpoints. A change of length never makes the lr jump: the decay continues from the
current multiplier along the same curve (linear or cosine) and reaches 0 at the new end.

Usage:
    schedule = Schedule("onecycle", total_steps=1000, warmup=0.1)
    sched = LrSchedule(opt, schedule)              # training/optim.py (torch's LambdaLR works too)
    schedule.set_total(800, step=sched.last_epoch)   # shorter: steeper decay from here, still 0 at step 800
    schedule.set_total(1200, step=sched.last_epoch)  # longer: gentler decay from here
"""
from __future__ import annotations

import math


def _decay(kind: str, progress: float) -> float:
    """Multiplier at decay progress in [0, 1]: 1 -> 0."""
    if kind == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0 - progress


def _progress_of(kind: str, value: float) -> float:
    """Inverse of _decay: the progress at which the curve has this multiplier."""
    value = min(1.0, max(0.0, value))
    if kind == "cosine":
        return math.acos(2 * value - 1) / math.pi
    return 1.0 - value


class Schedule:
    def __init__(self, kind: str, total_steps: int, warmup: float) -> None:
        self.kind, self.warmup = kind, warmup
        self.total_steps = max(1, int(total_steps))
        # warmup length is set when the run (re-)plans before the warmup ended; later re-plans keep it
        self.warmup_steps = max(1, int(round(warmup * self.total_steps))) if warmup > 0 else 0
        # after a change of length: the decay restarts at anchor_step from progress anchor_progress
        self.anchor_step, self.anchor_progress = 0, 0.0

    def __call__(self, step: int) -> float:
        """step -> factor in [0, 1]: linear warmup, then linear (onecycle) or cosine decay to 0 at total_steps."""
        warm = min(self.warmup_steps, max(0, self.total_steps - 1))
        if step < warm:
            return (step + 1) / warm
        start = max(warm, self.anchor_step)
        span = max(1, self.total_steps - start)
        progress = self.anchor_progress + (1 - self.anchor_progress) * min(1.0, max(0, step - start) / span)
        return _decay(self.kind, progress)

    def set_total(self, total_steps: int, step: int) -> None:
        """Change the length at optimizer step `step`; the multiplier at `step` is kept (no jump)."""
        total_steps = max(step + 1, int(total_steps))
        warm = min(self.warmup_steps, max(0, self.total_steps - 1))
        if step > warm:  # inside the decay: continue the curve from where it is now
            self.anchor_progress = _progress_of(self.kind, self(step))
            self.anchor_step = step
        elif self.warmup > 0:  # still warming up: the warmup becomes its share of the new length
            self.warmup_steps = max(step + 1, int(round(self.warmup * total_steps)))
        self.total_steps = total_steps


def lr_multiplier(kind: str, total_steps: int, warmup: float) -> Schedule:
    return Schedule(kind, total_steps, warmup)
