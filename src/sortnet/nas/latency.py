"""Measured 1-image CPU latency of a model: the second objective of `sortnet search --objectives accuracy,latency`.

One thread, fp32, no test-time augmentation, inference mode; the median of `iters` timed forward passes after
`warmup` untimed ones. One thread makes the number stable on a shared machine and comparable between trials
(what a single request costs on one core); the threads setting is restored afterwards.

Usage:
    ms = latency_ms(model, channels=1, img_size=28)
"""
from __future__ import annotations

import copy
import statistics
import time

import torch
from torch import nn


def latency_ms(model: nn.Module, channels: int, img_size: int, iters: int = 30, warmup: int = 5) -> float:
    """Median milliseconds of one forward pass of a uint8 [1, C, S, S] image on the CPU."""
    model = copy.deepcopy(model).to("cpu").eval()
    x = torch.randint(0, 256, (1, channels, img_size, img_size), dtype=torch.uint8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    times = []
    try:
        with torch.inference_mode():
            for i in range(warmup + iters):
                t0 = time.perf_counter()
                model(x)
                if i >= warmup:
                    times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times)
