"""--time-budget: plan a complete schedule that fits, then keep to it if the machine slows down.

Planning measures real step time on a throwaway copy of the model; the TimeBudget callback re-plans
(shortens) the schedule whenever the run falls behind, so training ends within the budget at the
end of a complete lr decay rather than being cut off mid-schedule.

Usage:
    steps, step_seconds = plan_steps(trainer, budget_seconds=60, val_images=len(val))
    trainer.set_total_steps(steps); trainer.callbacks.append(TimeBudget(60))
"""
from __future__ import annotations

import copy
import time

import torch

from sortnet.training.events import Callback
from sortnet.training.trainer import Trainer, build_optimizer

HEADROOM = 0.93  # fraction of the budget planned for training; the rest absorbs noise and the last validation
VAL_COST = 1 / 3  # a validation image costs ~1/3 of a training image (forward only)


def measure_step_seconds(trainer: Trainer, steps: int = 6, warmup_steps: int = 2) -> float:
    """Median seconds per training step (augmentation included) on a deep copy: the real run is untouched."""
    model = copy.deepcopy(trainer.model)
    opt = build_optimizer(model, trainer.recipe)
    saved = trainer.model, trainer.forward, trainer.opt, trainer.sched
    trainer.model, trainer.forward, trainer.opt = model, model, opt
    trainer.sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    gen = torch.Generator().manual_seed(12345)
    rng_state = torch.get_rng_state()
    try:
        times = []
        for i in range(warmup_steps + steps):
            idx = torch.randint(0, len(trainer.y), (trainer.batch_size,), generator=gen).to(trainer.device)
            t0 = time.perf_counter()
            trainer.train_step(trainer.augment(trainer.x[idx], idx, gen), trainer.y[idx])
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup_steps:
                times.append(time.perf_counter() - t0)
    finally:
        trainer.model, trainer.forward, trainer.opt, trainer.sched = saved
        torch.set_rng_state(rng_state)  # dropout draws during measuring must not change the real run
    times.sort()
    return times[len(times) // 2]


def plan_steps(trainer: Trainer, budget_seconds: float, val_images: int = 0) -> tuple[int, float]:
    """(total optimizer steps, seconds per step incl. amortized validation) fitting the budget."""
    step = measure_step_seconds(trainer)
    # validation runs once per epoch: spread its cost over that epoch's steps
    val_per_step = val_images * VAL_COST * step / trainer.batch_size / trainer.steps_per_epoch
    per_step = step + val_per_step
    return max(1, int(HEADROOM * budget_seconds / per_step)), per_step


class TimeBudget(Callback):
    """Shortens the schedule whenever the projected finish passes the budget (never lengthens it)."""

    def __init__(self, budget_seconds: float, check_every: int = 10) -> None:
        self.budget, self.check_every = budget_seconds, check_every
        self.t0, self.start_step, self.batches = 0.0, 0, 0
        self.replans = 0

    def on_train_start(self, trainer: Trainer) -> None:
        self.t0, self.start_step = time.perf_counter(), trainer.step

    def on_batch_end(self, trainer: Trainer, loss: float, correct: int, n: int) -> None:
        self.batches += 1
        if self.batches % self.check_every == 0:
            self._replan(trainer)

    def on_epoch_end(self, trainer: Trainer, metrics: dict) -> None:
        self._replan(trainer)  # includes the validation time just spent

    def _replan(self, trainer: Trainer) -> None:
        done = trainer.step - self.start_step
        if done <= 0:
            return
        elapsed = time.perf_counter() - self.t0
        per_step = elapsed / done
        affordable = int(max(0.0, self.budget * HEADROOM - elapsed) / per_step)
        if trainer.step + affordable < trainer.total_steps:
            trainer.set_total_steps(trainer.step + max(1, affordable))
            self.replans += 1
