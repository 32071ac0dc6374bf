"""--time-budget: measure real step time on a throwaway copy, then plan a complete schedule that fits.

Usage:
    epochs = plan_epochs(trainer, budget_seconds=60)
"""
from __future__ import annotations

import copy
import time

import torch

from sortnet.train.trainer import Trainer, build_optimizer


def measure_step_seconds(trainer: Trainer, steps: int = 6, warmup_steps: int = 2) -> float:
    """Seconds per training step (augmentation included) on a deep copy: the real run is untouched."""
    model = copy.deepcopy(trainer.model)
    opt = build_optimizer(model, trainer.recipe)
    saved_model, saved_opt, saved_sched = trainer.model, trainer.opt, trainer.sched
    trainer.model, trainer.opt = model, opt
    trainer.sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    gen = torch.Generator().manual_seed(12345)
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
        trainer.model, trainer.opt, trainer.sched = saved_model, saved_opt, saved_sched
    times.sort()
    return times[len(times) // 2]


def plan_epochs(trainer: Trainer, budget_seconds: float, val_images: int = 0) -> tuple[int, float]:
    """(epochs, estimated seconds per epoch) so that training plus per-epoch validation fits the budget."""
    step = measure_step_seconds(trainer)
    # validation: forward only (~1/3 of a training step per image), every epoch
    val_seconds = val_images / trainer.batch_size * step / 3
    epoch_seconds = trainer.steps_per_epoch * step + val_seconds
    usable = 0.92 * budget_seconds  # headroom for the final evaluation and saving
    epochs = max(1, int(usable // epoch_seconds))
    return epochs, epoch_seconds
