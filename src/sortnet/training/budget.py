"""--time-budget's keeper: re-plans the run's length both ways so that the whole command ends on time.

The budget is a Deadline (training/clock.py) that covers the whole command. After every step the keeper
projects the finish from what it has measured in this run — the recent seconds per step, the cost of an
epoch's end (validation, checkpoint) and the estimated cost of the end of the run (final evaluation and
saving) — and moves the end of the schedule: earlier when the machine is slower than planned (another
program took the cores), later when it is faster (the plan was measured while the machine was busy).
The lr schedule follows without a jump (training/schedule.py), so the run always ends at the end of a
complete decay, and the budget is used rather than wasted.

Usage:
    keeper = TimeBudget(20.0, start=deadline.start, step_seconds=plan.step_seconds,
                        epoch_end_seconds=plan.epoch_end_seconds, finish_seconds=plan.finish_seconds)
    trainer.callbacks.append(keeper)
"""
from __future__ import annotations

import math
import time
from collections import deque

from sortnet.training.callbacks import Callback

STEP_WINDOW = 24  # recent steps whose mean is the step-time estimate (tracks a machine that changes speed)
EXTEND_MIN_STEPS = 2  # extend only by at least this many steps (no flapping by one step either way)
MARGIN_FRACTION = 0.02  # of the budget: kept free for measurement noise and the process's exit
MARGIN_MIN_SECONDS = 0.15
MAX_SLOWDOWN = 4.0  # bound on the factor applied to the evaluation estimates when steps run slower than planned


def safety_margin(budget_seconds: float) -> float:
    return max(MARGIN_MIN_SECONDS, MARGIN_FRACTION * budget_seconds)


def affordable_steps(seconds: float, step_seconds: float, epoch_end_seconds: float, steps_per_epoch: int,
                     step: int) -> int:
    """How many more steps fit in `seconds`, counting an epoch end (validation...) after every epoch that ends.

    The last epoch ends too (its validation runs), so k more steps cost k * step + E(k) * epoch_end where
    E(k) = epochs finished by step + k, counting the one in progress.
    """
    def cost(k: int) -> float:
        ends = math.ceil((step + k) / steps_per_epoch) - step // steps_per_epoch if k > 0 else 0
        return k * step_seconds + ends * epoch_end_seconds

    lo, hi = 0, max(0, int(seconds / step_seconds))  # cost is monotone in k: the largest k that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost(mid) <= seconds else (lo, mid - 1)
    return lo


def plan_steps(trainer, budget_seconds: float, val_images: int = 0) -> tuple[int, float]:
    """(steps, seconds per step) of training that fit `budget_seconds`, an epoch end's validation counted:
    for a phase that budgets itself (fine-tuning after feature extraction, runs/pretrained.py). Measured on a
    copy of the model; whole-command runs are planned by runs/planner.py instead."""
    step = trainer.measure_step_seconds(steps=3, warmup_steps=1)
    val = val_images * trainer.measure_eval_seconds(repeats=1) if val_images else 0.0
    left = budget_seconds - safety_margin(budget_seconds)
    return max(1, affordable_steps(left, step, val, trainer.steps_per_epoch, trainer.step)), step


class TimeBudget(Callback):
    """Moves the end of the run so that it finishes (model file written) by the budget's deadline.

    start: time.monotonic() at which the budget's clock started (None: when training begins).
    spent: seconds of this budget used before this process (a resumed run).
    step_seconds / epoch_end_seconds / finish_seconds: the planner's estimates, replaced by measurements
    (steps, epoch ends) as the run goes; finish_seconds is what the end of the run needs after the last step.
    """

    def __init__(self, budget_seconds: float, check_every: int = 1, spent: float = 0.0, start: float | None = None,
                 step_seconds: float | None = None, epoch_end_seconds: float = 0.0, finish_seconds: float = 0.0,
                 margin: float | None = None) -> None:
        self.budget, self.check_every, self.spent, self.start = budget_seconds, check_every, spent, start
        self.step_seconds, self.epoch_end_seconds, self.finish_seconds = step_seconds, epoch_end_seconds, finish_seconds
        self.margin = safety_margin(budget_seconds) if margin is None else margin
        self.step_times: deque[float] = deque(maxlen=STEP_WINDOW)
        self.last_time, self.boundary, self.batches = 0.0, True, 0
        self.shortened = self.extended = 0
        self.epoch_end_measured = False  # epoch_end_seconds is this run's own measurement (else the planner's)
        self.training_began_at: float | None = None  # time.monotonic() at the start of training
        self.training_ended_at: float | None = None  # time.monotonic() of the last step

    @property
    def remaining(self) -> float:
        return self.budget - self.spent

    @property
    def replans(self) -> int:
        return self.shortened + self.extended

    @property
    def end(self) -> float:
        """time.monotonic() by which the whole command should be done."""
        return self.start + self.remaining

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.start is None:
            self.start = time.monotonic()
        self.last_time, self.boundary = time.monotonic(), True
        self.training_began_at = self.last_time

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.boundary = True  # the next interval holds the epoch end (validation, callbacks), not one step

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.monotonic()
        interval, self.last_time = now - self.last_time, now
        if self.boundary:
            if self.step_times and self.trainer.epoch > 0:  # not the run's first step (start-up costs)
                self.epoch_end_seconds = max(0.0, interval - self.mean_step())
                self.epoch_end_measured = True
            self.boundary = False
        else:
            self.step_times.append(interval)
        self.batches += 1
        if self.batches % self.check_every == 0:
            self.replan(now)

    def on_train_end(self, logs: dict | None = None) -> None:
        self.training_ended_at = self.last_time

    def timeline(self) -> dict:
        """Seconds after the budget's start at which training began and ended (for metrics.json)."""
        return {k: round(t - self.start, 2) for k, t in (("training_began", self.training_began_at),
                                                          ("training_ended", self.training_ended_at)) if t}

    def mean_step(self) -> float:
        if self.step_times:
            return sum(self.step_times) / len(self.step_times)
        return self.step_seconds or 0.0

    def replan(self, now: float | None = None) -> None:
        """Set the run's end to the last step that lets the run finish by the deadline."""
        trainer, per_step = self.trainer, self.mean_step()
        if per_step <= 0:
            return
        now = time.monotonic() if now is None else now
        # evaluation slows down with the steps (another program took the cores): the planner's estimates of
        # what follows training are scaled by how much slower the steps run than when they were measured
        slower = min(MAX_SLOWDOWN, max(1.0, per_step / self.step_seconds)) if self.step_seconds else 1.0
        epoch_end = self.epoch_end_seconds * (1.0 if self.epoch_end_measured else slower)
        left = self.end - now - self.finish_seconds * slower - self.margin
        extra = affordable_steps(left, per_step, epoch_end, trainer.steps_per_epoch, trainer.step)
        target = trainer.step + max(1, extra)
        if target < trainer.total_steps:
            trainer.set_total_steps(target)
            self.shortened += 1
        elif target >= trainer.total_steps + EXTEND_MIN_STEPS:
            trainer.set_total_steps(target)
            self.extended += 1
