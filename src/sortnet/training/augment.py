"""Whole-batch augmentation on uint8/float tensors (no per-sample Python), as in the speed-run recipes.

All randomness comes from an explicit torch.Generator, so a resumed run replays identical batches.

Usage:
    x = random_translate(x, pad=2, gen=g)            # [B, C, H, W], reflect-padded shifts of up to 2 px
    x = flip_batch(x, alternating_flip_mask(idx, epoch, seed))
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_translate(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by up to +/-pad px (reflect padding); x [B, C, H, W] any dtype."""
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    xp = F.pad(x.float() if x.dtype == torch.uint8 else x, (pad, pad, pad, pad), mode="reflect").to(x.dtype)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=gen.device).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=gen.device).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # [B, H, 1]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # [B, 1, W]
    bidx = torch.arange(b, device=x.device)[:, None, None]
    return xp.permute(0, 2, 3, 1)[bidx, rows, cols].permute(0, 3, 1, 2).contiguous()  # [B, C, H, W]


def flip_batch(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images where mask [B] (bool) is True."""
    if not bool(mask.any()):
        return x
    return torch.where(mask.to(x.device)[:, None, None, None], x.flip(-1), x)


def alternating_flip_mask(index: torch.Tensor, epoch: int, seed: int) -> torch.Tensor:
    """Random per-image flips in epoch 0, then each image alternates (airbench's 'alternating flip').

    index [B]: dataset row of each image. Every image is seen both ways within any two epochs, which
    covers the flip augmentation with less variance than independent coin flips.
    """
    # A fixed per-row coin from a cheap integer hash of (row, seed): no state to save on resume.
    h = (index.long() * 2654435761 + seed * 97531) % 2**32
    base = ((h >> 16) & 1).bool()
    return base ^ bool(epoch % 2)


def random_resized_crop(
    x: torch.Tensor, gen: torch.Generator, scale: tuple[float, float] = (0.35, 1.0), ratio: float = 4 / 3
) -> torch.Tensor:
    """Batched random-resized-crop via affine grids; x [B, C, H, W] float -> same shape."""
    b = x.shape[0]
    dev = gen.device
    area = torch.empty(b, device=dev).uniform_(scale[0], scale[1], generator=gen)
    log_r = torch.empty(b, device=dev).uniform_(-float(torch.log(torch.tensor(ratio))),
                                                float(torch.log(torch.tensor(ratio))), generator=gen)
    r = torch.exp(log_r)
    sw = torch.sqrt(area * r).clamp(max=1.0)  # crop width / image width
    sh = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(b, device=dev, generator=gen) * 2 - 1) * (1 - sw)  # centre in [-1, 1] units
    cy = (torch.rand(b, device=dev, generator=gen) * 2 - 1) * (1 - sh)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sw, cx, sh, cy
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="reflection", align_corners=False)
