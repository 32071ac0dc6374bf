"""Test-time augmentation (TTA): which views are averaged, how many there are, and batched inference with them.

The one home of TTA: the model file's metadata (modelmeta), prediction (infer/), training's evaluation,
the planner's cost of the final evaluation and the report's FLOPs all take views and their count from here.

Usage:
    logits = predict_logits(model, images_uint8, device=torch.device("cpu"), tta=TTA(flip=True, shift=1))
    n = view_count(TTA(flip=True, shift=1))           # 6 forward passes per image
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sortnet.device import autocast_context


@dataclass
class TTA:
    """Views averaged at prediction: the image, its mirror (flip), and copies shifted by +/-shift px."""

    flip: bool = False
    shift: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate x [B, C, H, W] by (dy, dx) px with reflect padding."""
    p = max(abs(dy), abs(dx))
    h, w = x.shape[-2:]
    xp = F.pad(x, (p, p, p, p), mode="reflect")
    return xp[..., p - dy : p - dy + h, p - dx : p - dx + w]


def view_count(tta: TTA | None, img_size: int | None = None) -> int:
    """How many views tta_views makes (forward passes per image): the image, its mirror with flip, and +/-shift
    copies of each. Shifts need an image larger than the shift; img_size None: assumed so (the planner's case)."""
    if tta is None:
        return 1
    views = 2 if tta.flip else 1
    shifts = tta.shift > 0 and (img_size is None or img_size > tta.shift)
    return views * 3 if shifts else views


def tta_views(x: torch.Tensor, tta: TTA | None) -> list[torch.Tensor]:
    """x float [B, C, H, W] -> the list of views whose logits are averaged."""
    views = [x]
    if tta is None:
        return views
    if tta.flip:
        views.append(x.flip(-1))
    if tta.shift > 0 and min(x.shape[-2:]) > tta.shift:
        s = tta.shift
        views += [_shift(v, s, s) for v in list(views)] + [_shift(v, -s, -s) for v in list(views)]
    return views


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    images: np.ndarray | torch.Tensor,
    device: torch.device,
    dtype: torch.dtype | None = None,
    batch_size: int = 512,
    tta: TTA | None = None,
    channels_last: bool = True,
) -> torch.Tensor:
    """float32 logits [N, K] on the CPU for uint8 images [N, C, H, W]; model must already be on device."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        x = torch.as_tensor(np.asarray(chunk) if not torch.is_tensor(chunk) else chunk).to(device).float()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, dtype):
            views = tta_views(x, tta)
            logits = torch.stack([model(v).float() for v in views]).mean(0)
        out.append(logits.cpu())
    model.train(was_training)
    if not out:
        return torch.zeros(0, getattr(model, "num_classes", 0))
    return torch.cat(out)
