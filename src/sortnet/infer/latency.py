"""Measured 1-image CPU latency, the one home of latency measurement. Two latencies, two names:

- `model_latency_ms_1thread`: the bare model's forward pass, one thread, fp32, no test-time augmentation,
  inference mode; the median of `iters` timed calls after `warmup` untimed ones. One thread makes the number
  stable on a shared machine and comparable between trials (what a single request costs on one core): the
  second objective of `sortnet search --objectives accuracy,latency`. The threads setting is restored after.
- `predict_latency_ms`: what `sortnet predict` pays per image once the model is loaded: one preprocessed uint8
  image through the Predictor (the runtime predict would pick, test-time-augmentation views included), with
  the process's threads; the median of calls for about `seconds` after warm-up: the ladder's latency column.

Both time their calls with `median_call_ms`.

Usage:
    ms = model_latency_ms_1thread(model, channels=1, img_size=28)      # 0.21
    r = predict_latency_ms(model, meta)             # {"predict_latency_ms": 3.1, "runtime": "onnx"}
"""
from __future__ import annotations

import copy
import statistics
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

PREDICT_WARMUP = 3
PREDICT_MIN_CALLS = 10
PREDICT_SECONDS = 2.0  # measure for about this long (more calls for fast models), at least PREDICT_MIN_CALLS
MAX_CALLS = 1000  # a cap on the timed calls of a very fast model


def median_call_ms(call: Callable[[], object], warmup: int, min_calls: int, seconds: float = 0.0,
                   max_calls: int = MAX_CALLS) -> float:
    """Median milliseconds of call(): warmup untimed calls, then at least min_calls timed ones, more until
    `seconds` have passed (0: exactly min_calls), never more than max_calls."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_calls and (len(times) < min_calls or time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def model_latency_ms_1thread(model: nn.Module, channels: int, img_size: int, iters: int = 30,
                             warmup: int = 5) -> float:
    """Median milliseconds of one forward pass of a uint8 [1, C, S, S] image on the CPU, one thread."""
    model = copy.deepcopy(model).to("cpu").eval()
    x = torch.randint(0, 256, (1, channels, img_size, img_size), dtype=torch.uint8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            return median_call_ms(lambda: model(x), warmup=warmup, min_calls=iters)
    finally:
        torch.set_num_threads(threads)


def predict_latency_ms(model: nn.Module, meta, runtime: str = "auto", seconds: float = PREDICT_SECONDS) -> dict:
    """{"predict_latency_ms": median ms for one image through the Predictor, "runtime": torch|onnx} on the CPU."""
    from sortnet.infer.predictor import Predictor

    predictor = Predictor(model, meta, device="cpu", runtime=runtime, batch_size=1)
    prep = predictor.prep
    image = np.random.default_rng(0).integers(0, 256, (1, prep.channels, prep.img_size, prep.img_size), np.uint8)
    ms = median_call_ms(lambda: predictor.predict_arrays(image), warmup=PREDICT_WARMUP,
                        min_calls=PREDICT_MIN_CALLS, seconds=seconds)
    return {"predict_latency_ms": round(ms, 3), "runtime": predictor.runtime}
