"""--time-budget: plan a complete schedule that fits, then keep to it if the machine slows down.

Planning measures real step time through `Trainer.measure_step_seconds` (a throwaway copy of the model);
the TimeBudget callback re-plans (shortens) the schedule whenever the run falls behind, so training ends
within the budget at the end of a complete lr decay rather than being cut off mid-schedule. A resumed run
gets a keeper for what is left of the budget (the seconds already trained are in the run's history).

Usage:
    steps, step_seconds = plan_steps(trainer, budget_seconds=60, val_images=len(val))
    trainer.set_total_steps(steps); trainer.callbacks.append(TimeBudget(60))
"""
from __future__ import annotations

import time

from sortnet.training.callbacks import Callback
from sortnet.training.trainer import Trainer

HEADROOM = 0.93  # fraction of the budget planned for training; the rest absorbs noise and the last validation
VAL_COST = 1 / 3  # a validation image costs ~1/3 of a training image (forward only)


def plan_steps(trainer: Trainer, budget_seconds: float, val_images: int = 0) -> tuple[int, float]:
    """(total optimizer steps, seconds per step incl. amortized validation) fitting the budget."""
    step = trainer.measure_step_seconds()
    # validation runs once per epoch: spread its cost over that epoch's steps
    val_per_step = val_images * VAL_COST * step / trainer.batch_size / trainer.steps_per_epoch
    per_step = step + val_per_step
    return max(1, int(HEADROOM * budget_seconds / per_step)), per_step


class TimeBudget(Callback):
    """Shortens the schedule whenever the projected finish passes the budget (never lengthens it).

    spent: seconds of this budget already used before this process (a resumed run).
    """

    def __init__(self, budget_seconds: float, check_every: int = 10, spent: float = 0.0) -> None:
        self.budget, self.check_every, self.spent = budget_seconds, check_every, spent
        self.t0, self.start_step, self.batches = 0.0, 0, 0
        self.replans = 0

    @property
    def remaining(self) -> float:
        return self.budget - self.spent

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.t0, self.start_step = time.perf_counter(), self.trainer.step

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.batches += 1
        if self.batches % self.check_every == 0:
            self._replan()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._replan()  # includes the validation time just spent

    def _replan(self) -> None:
        trainer = self.trainer
        done = trainer.step - self.start_step
        if done <= 0:
            return
        elapsed = time.perf_counter() - self.t0
        per_step = elapsed / done
        affordable = int(max(0.0, self.remaining * HEADROOM - elapsed) / per_step)
        if trainer.step + affordable < trainer.total_steps:
            trainer.set_total_steps(trainer.step + max(1, affordable))
            self.replans += 1
