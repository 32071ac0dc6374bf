"""What a trained model costs: parameters, file size and the measured 1-image CPU latency.

Latency is what `sortnet predict` pays per image once the model is loaded: one preprocessed uint8 image
through the Predictor (the runtime predict would pick, test-time-augmentation views included), median of
repeated calls after warm-up, on the CPU with the process's threads.

Usage:
    ms = latency_ms(model, meta)            # {"latency_ms": 3.1, "runtime": "onnx"}
    n = parameter_count(model)
"""
from __future__ import annotations

import statistics
import time

import numpy as np
from torch import nn

LATENCY_WARMUP = 3
LATENCY_MIN_CALLS = 10
LATENCY_SECONDS = 2.0  # measure for about this long (more calls for fast models), at least LATENCY_MIN_CALLS


def parameter_count(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def latency_ms(model: nn.Module, meta, runtime: str = "auto", seconds: float = LATENCY_SECONDS) -> dict:
    """{"latency_ms": median ms for one image, "runtime": torch|onnx} on the CPU."""
    from sortnet.infer.predictor import Predictor

    predictor = Predictor(model, meta, device="cpu", runtime=runtime, batch_size=1)
    prep = predictor.prep
    image = np.random.default_rng(0).integers(0, 256, (1, prep.channels, prep.img_size, prep.img_size), np.uint8)
    for _ in range(LATENCY_WARMUP):
        predictor.predict_arrays(image)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < LATENCY_MIN_CALLS or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        predictor.predict_arrays(image)
        times.append(time.perf_counter() - t0)
        if len(times) >= 1000:
            break
    return {"latency_ms": round(1000 * statistics.median(times), 3), "runtime": predictor.runtime}
