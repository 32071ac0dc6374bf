"""Inside an ensemble: turn the common uint8 input into what one member was trained on (channels, size).

A member whose Preprocessing differs from the ensemble's common one (fewer channels, a smaller side) gets
its input made in the graph, so one ONNX graph serves every member: RGB -> grey with Pillow's integer luma
formula, then Pillow's bilinear resize re-done as two fixed matrix products (its 22-bit fixed-point
coefficients, a rounding to whole grey levels after each pass, horizontal first, computed in float64).
The result is bit-identical to Pillow converting and resizing the common-size image (tested). Only
MatMul, Floor, Clip and Cast: exports to any ONNX opset. A member with the common preprocessing sees the
input untouched (bit-identical to predicting with the member alone).

Usage:
    adapter = MemberInput(common_prep, member_prep)     # nn.Module
    x_member = adapter(x_common.float())                # [B, C, S, S] -> [B, c, s, s], whole values 0..255
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sortnet.data.preprocess import Preprocessing

# Pillow's "L" conversion: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16 (ITU-R 601-2 in 16-bit fixed point).
# Every intermediate is an integer below 2**24, so float32 computes it exactly.
LUMA_WEIGHTS = (19595.0, 38470.0, 7471.0)
LUMA_SHIFT = 65536.0
PRECISION_BITS = 22  # Pillow's fixed-point coefficients for 8-bit images (Resample.c: 32 - 8 - 2)


def pillow_bilinear_matrix(src: int, dst: int) -> np.ndarray:
    """float64 [dst, src]: Pillow's bilinear resampling weights (Resample.c precompute_coeffs + the 8-bit
    fixed-point rounding), so `floor(matrix @ row + 0.5)` is Pillow's one-dimensional resize of a row."""
    scale = src / dst
    filterscale = max(scale, 1.0)  # downscaling widens the triangle filter: Pillow's resize is antialiased
    support = filterscale  # the bilinear (triangle) filter has support 1
    out = np.zeros((dst, src), np.float64)
    for j in range(dst):
        center = (j + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), src)
        w = np.array([max(0.0, 1.0 - abs((i - center + 0.5) / filterscale)) for i in range(lo, hi)])
        if w.sum() != 0:
            w = w / w.sum()
        fixed = np.trunc(w * (1 << PRECISION_BITS) + np.where(w < 0, -0.5, 0.5))  # C's (int)(k * 2^22 +- 0.5)
        out[j, lo:hi] = fixed / (1 << PRECISION_BITS)
    return out


class MemberInput(nn.Module):
    """Common input [B, C, S, S] (float, 0..255) -> a member's input [B, c, s, s] (float, whole values 0..255)."""

    def __init__(self, common: Preprocessing, member: Preprocessing) -> None:
        super().__init__()
        if member.img_size > common.img_size or member.channels > common.channels:
            raise ValueError("the common input must be at least as large and as colourful as every member's")
        self.to_grey = common.channels == 3 and member.channels == 1
        self.resize = member.img_size != common.img_size
        self.register_buffer("luma", torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1), persistent=False)
        matrix = pillow_bilinear_matrix(common.img_size, member.img_size) if self.resize else np.zeros((0, 0))
        # int64 fixed-point [s, S]: integer buffers keep their dtype through model.float() (export does that)
        fixed = np.round(matrix * (1 << PRECISION_BITS)).astype(np.int64)
        self.register_buffer("fixed_rows", torch.from_numpy(fixed), persistent=False)

    @property
    def identity(self) -> bool:
        return not (self.to_grey or self.resize)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.to_grey:
            x = torch.floor(((x * self.luma).sum(1, keepdim=True) + LUMA_SHIFT / 2) / LUMA_SHIFT)
        if self.resize:
            # Pillow's two passes, each rounded to whole levels: along W (x @ rows^T), then along H (rows @ x);
            # float64 so every sum is exact enough to round as Pillow's integer arithmetic does
            rows = self.fixed_rows.double() / (1 << PRECISION_BITS)
            x = torch.clamp(torch.floor(torch.matmul(x.double(), rows.t()) + 0.5), 0.0, 255.0)
            x = torch.clamp(torch.floor(torch.matmul(rows, x) + 0.5), 0.0, 255.0).float()
        return x
