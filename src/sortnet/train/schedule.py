"""Learning-rate schedules as multipliers of the peak lr, per optimizer step.

Usage:
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_multiplier("onecycle", total_steps=1000, warmup=0.1))
"""
from __future__ import annotations

import math
from typing import Callable


def lr_multiplier(kind: str, total_steps: int, warmup: float) -> Callable[[int], float]:
    """step -> factor in [0, 1]: linear warmup over warmup*total steps, then linear or cosine decay to 0."""
    total = max(1, total_steps)
    warm = max(1, int(round(warmup * total))) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        if kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0 - progress

    return factor
