"""A model's size and compute: its parameters, and the multiply-adds of one forward pass (counted with hooks on
convolutions and linear layers). The one home of both counts (the report, the ladder and the search use them).

torch's FlopCounterMode would load torch._dynamo (seconds of imports), and these two layer kinds are where the
compute of sortnet's models is. The planner compares the widths of one net with it; transfer/speed.py predicts
feature-extraction time from it.

Usage:
    macs = module_macs(model, (3, 224, 224))      # one image of that shape
    n = parameter_count(model)                     # all parameters; trainable_only=True: those with grad
"""
from __future__ import annotations

import math

import torch
from torch import nn


def parameter_count(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values (shared tensors once, as module.parameters() yields them)."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only))


def module_macs(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass of module on one input of shape (C, H, W) (convolutions, linear)."""
    total = 0

    def count(m, i, o):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += o.numel() * m.in_channels // m.groups * math.prod(m.kernel_size)
        elif isinstance(m, nn.Linear):
            total += o.numel() * m.in_features

    hooks = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, *shape))
    finally:
        for h in hooks:
            h.remove()
    return total
