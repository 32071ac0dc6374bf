"""The one model interface: pixels (0..255) -> normalize -> features [B, F] -> linear head -> logits [B, K].

Every registered model is a SortnetModel, so fine-tuning, explainers and export work for all of them.

Usage:
    model = SortnetModel(body, num_features=256, num_classes=10, mean=(0.5,), std=(0.25,))
    logits = model(uint8_or_float_pixels)        # [B, C, H, W] in 0..255 -> [B, K]
"""
from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """(x / 255 - mean) / std per channel, folded into one multiply-add; x holds 0..255 pixel values."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std_t))
        self.register_buffer("shift", -mean_t / std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() * self.scale + self.shift


class SortnetModel(nn.Module):
    """body maps normalized [B, C, H, W] to features [B, F]; head is nn.Linear(F, K)."""

    def __init__(
        self,
        body: nn.Module,
        num_features: int,
        num_classes: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        head_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.body = body
        self.dropout = nn.Dropout(head_dropout) if head_dropout > 0 else nn.Identity()
        self.head = nn.Linear(num_features, num_classes)
        self.num_features = num_features
        self.num_classes = num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] pixels 0..255 -> [B, F] features (before the head)."""
        return self.body(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> None:
        """Data-dependent init (e.g. patch whitening) for bodies that define it; images uint8 [N, C, H, W]."""
        init = getattr(self.body, "init_from_data", None)
        if init is not None:
            init(self.normalize(images))
