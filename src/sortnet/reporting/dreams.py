"""Class "dreams": for each class, an input image optimized so the model scores that class as high as it can.

Activation maximization with the three regularizers that make the result look like something rather
than adversarial noise (Yosinski et al. 2015, "Understanding neural networks through deep visualization"):
- jitter: each step sees the image shifted by a random offset, so single-pixel tricks do not pay;
- blur: every few steps the image is smoothed with a Gaussian whose width shrinks over the run;
- a pixel prior: L2 decay of the normalized pixels towards 0 after every step (a Gaussian prior
  centred on the training set's mean colour, scaled by its standard deviation), and pixels clamped
  to 0..255.
The optimized variable is the normalized image u = (pixels / 255 - mean) / std, so the prior and the
step size mean the same for every dataset. Seeded: the same model, seed and number of steps give the
same pictures; `seconds` bounds the time (the run stops early, with fewer steps, when it is spent).

Usage:
    result = class_dreams(model, mean=(0.29,), std=(0.35,), steps=200, seconds=10, seed=0)
    result.images       # uint8 [K, C, H, W], one per class;  result.steps_done, result.probabilities
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sortnet.models.base import SortnetModel
from sortnet.progress import progress as show

DECAY = 0.03  # per step: u <- (1 - DECAY) u, the L2 prior as weight decay on the image
LEARNING_RATE = 0.1  # Adam step on normalized pixels (Adam: the step size does not depend on the logit scale)
BLUR_EVERY = 4  # steps between Gaussian blurs
BLUR_END = 0.5  # the blur's width shrinks linearly to this fraction of its start (details come in late)
MAX_BATCH_VALUES = 64 * 3 * 64 * 64  # pixel values optimized at once: all classes at <= 64 px, ~5 at 224 px


@dataclass
class DreamResult:
    images: np.ndarray  # uint8 [K, C, H, W]
    probabilities: np.ndarray  # float32 [K]: the model's probability of the dreamt class for its dream
    steps_done: int  # the fewest steps any class got (all get `steps` unless the time bound cut them short)
    seconds: float


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of x [B, C, H, W] (reflect padding), radius 2 sigma."""
    radius = max(1, int(math.ceil(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    if pad < radius:  # tiny images: reflect padding needs pad < size
        k, radius = k[radius - pad : radius + pad + 1] / k[radius - pad : radius + pad + 1].sum(), pad
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _pixel_bounds(mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized values of pixels 0 and 255, [1, C, 1, 1] each."""
    return (0 - mean) / std, (1 - mean) / std


def _step(model, u, opt, classes, g, jitter, mean, std) -> None:
    dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=g))
    pixels = (torch.roll(u, (dy, dx), (2, 3)) * std + mean) * 255.0  # what the model takes: 0..255
    logits = model(pixels)
    opt.zero_grad(set_to_none=True)
    (-logits.gather(1, classes[:, None]).sum()).backward()  # each image raises its own class's logit
    opt.step()


def _optimize(model, classes: torch.Tensor, shape: tuple[int, int], mean_t, std_t, steps: int, seconds: float,
              g: torch.Generator, bar) -> tuple[torch.Tensor, int]:
    """Normalized images [len(classes), C, S, S] after up to `steps` steps within `seconds`; and the steps done."""
    c, size = shape
    low, high = _pixel_bounds(mean_t, std_t)
    u = (0.1 * torch.randn(len(classes), c, size, size, generator=g)).requires_grad_(True)
    opt = torch.optim.Adam([u], lr=LEARNING_RATE)
    jitter, sigma0 = max(1, size // 14), max(1.0, size / 56)  # px: 1 at 28 px, 4 at 224 px
    t0, done = time.perf_counter(), 0
    while done < steps and (done == 0 or time.perf_counter() - t0 < seconds):
        _step(model, u, opt, classes, g, jitter, mean_t, std_t)
        done += 1
        with torch.no_grad():
            u.mul_(1 - DECAY)
            if done % BLUR_EVERY == 0:
                u.copy_(gaussian_blur(u, sigma0 * (1 - (1 - BLUR_END) * done / steps)))
            u.copy_(torch.maximum(torch.minimum(u, high), low))
        bar.update(1)
    return u.detach(), done


def class_dreams(model: SortnetModel, mean: tuple[float, ...], std: tuple[float, ...], *, steps: int = 200,
                 seconds: float = 10.0, seed: int = 0, img_size: int | None = None, channels: int | None = None,
                 progress: bool = True) -> DreamResult:
    """One dream per class. Classes are optimized together, in batches of at most MAX_BATCH_VALUES pixel
    values (all of them for small images; a few at a time at photo sizes), each batch its share of `seconds`."""
    model = model.eval()
    trainable = {p: p.requires_grad for p in model.parameters()}
    for p in trainable:
        p.requires_grad_(False)  # gradients only for the image; restored below
    c, size, k = channels or len(mean), img_size or 28, model.num_classes
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    per_batch = max(1, min(k, MAX_BATCH_VALUES // (c * size * size)))
    batches = [torch.arange(i, min(k, i + per_batch)) for i in range(0, k, per_batch)]
    g = torch.Generator().manual_seed(seed)
    t0, images, done = time.perf_counter(), [], []
    try:
        with torch.enable_grad(), show(total=steps * len(batches), desc="report: class dreams", unit="step",
                                       enabled=progress, leave=False) as bar:
            for classes in batches:
                u, n = _optimize(model, classes, (c, size), mean_t, std_t, steps, seconds * len(classes) / k, g, bar)
                images.append(u)
                done.append(n)
    finally:
        for p, flag in trainable.items():
            p.requires_grad_(flag)
    with torch.no_grad():
        pixels = ((torch.cat(images) * std_t + mean_t) * 255.0).round().clamp(0, 255).to(torch.uint8)
        probs = torch.cat([torch.softmax(model(pixels[b].float()), 1)[torch.arange(len(b)), b] for b in batches])
    return DreamResult(pixels.numpy(), probs.numpy().astype(np.float32), min(done), time.perf_counter() - t0)
