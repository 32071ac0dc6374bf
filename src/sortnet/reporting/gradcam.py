"""Grad-CAM heat maps for every SortnetModel: where in the image the evidence for a class lies.

Grad-CAM (Selvaraju et al. 2017): take the last feature map A [B, K, h, w] of the body, weight each
channel by the spatial mean of d(logit_c)/dA, sum over channels, ReLU, upsample to the input size.
The target layer is found, not configured: the last module inside `model.body` whose output is a
feature map larger than 1x1 (WhitenedCNN: the last conv group; ResNets: the last stage; layer specs:
the last conv/pool). Models with no feature map (`linear`, `mlp`, dense-only specs) get input x gradient
on the normalized pixels instead, which for `linear` is exactly each pixel's contribution w * x to the
logit.

Why not the pip `grad-cam` package: it needs a 4-D target layer (no answer for linear/mlp), pulls in
ttach and OpenCV, and its per-layer choice must be configured per architecture; the method itself is
the ~20 lines below, checked against a hand-written PyTorch computation in tests/test_report_parts.py.

Usage:
    maps = grad_cam(model, images_uint8, class_idx)      # float32 [B, H, W] in 0..1
    layer = find_target_layer(model, images_uint8[:1])   # ("groups", module) or None
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sortnet.models.base import SortnetModel


def _module_outputs(model: SortnetModel, x: torch.Tensor) -> list[tuple[str, nn.Module, torch.Tensor]]:
    """(name, module, output) for every module of model.body, in the order the modules finished."""
    records: list[tuple[str, nn.Module, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: records.append((name, mod, out)))
             for name, m in model.body.named_modules()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return records


def find_target_layer(model: SortnetModel, sample: np.ndarray | torch.Tensor) -> tuple[str, nn.Module] | None:
    """The last body module with a feature-map output [B, K, h, w], h * w > 1; None if the body has none."""
    x = torch.as_tensor(np.asarray(sample[:1]) if not torch.is_tensor(sample) else sample[:1]).float()
    found = [(name, mod) for name, mod, out in _module_outputs(model.eval(), x)
             if torch.is_tensor(out) and out.ndim == 4 and out.shape[-1] * out.shape[-2] > 1]
    return found[-1] if found else None


def _activation_and_grad(model: SortnetModel, module: nn.Module, x: torch.Tensor,
                         class_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """module's output A for input x and d(sum of chosen logits)/dA (each image's logit depends on its A only)."""
    captured: list[torch.Tensor] = []
    hook = module.register_forward_hook(lambda mod, inp, out: captured.append(out))
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # frozen layers (whitening, normalize) still get a graph
            logits = model(x)
            act = captured[-1]
            score = logits.gather(1, class_idx[:, None]).sum()
            grad = torch.autograd.grad(score, act)[0]
    finally:
        hook.remove()
    return act.detach().float(), grad.float()


def grad_cam(model: SortnetModel, images: np.ndarray | torch.Tensor, class_idx,
             batch_size: int = 64) -> np.ndarray:
    """Heat maps float32 [B, H, W] in 0..1 (each map divided by its maximum) for images uint8 [B, C, H, W]."""
    model = model.eval()
    images = torch.as_tensor(np.asarray(images)) if not torch.is_tensor(images) else images
    classes = torch.as_tensor(np.asarray(class_idx), dtype=torch.int64)
    if len(images) == 0:
        return np.zeros((0, *images.shape[-2:]), np.float32)
    target = find_target_layer(model, images[:1])
    maps = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].float()
        idx = classes[start : start + batch_size]
        if target is None:  # no feature map: input x gradient on the normalized pixels
            act, grad = _activation_and_grad(model, model.normalize, x, idx)
            cam = F.relu((act * grad).sum(1, keepdim=True))
        else:
            act, grad = _activation_and_grad(model, target[1], x, idx)
            weights = grad.mean(dim=(2, 3), keepdim=True)  # [B, K, 1, 1]: channel importance
            cam = F.relu((weights * act).sum(1, keepdim=True))  # [B, 1, h, w]
        cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
        peak = cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
        maps.append((cam / peak).numpy().astype(np.float32))
    return np.concatenate(maps)
