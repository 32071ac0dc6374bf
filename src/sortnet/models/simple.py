"""The simplest models: a linear classifier on raw pixels and a two-hidden-layer perceptron (MLP).

`linear` is the "neural network in a spreadsheet": one weight per pixel per class, no hidden layer.
Its head weights reshaped to [K, C, H, W] are one picture per class (see linear_weight_images).
`mlp` is the classic Keras MNIST multilayer perceptron, sized for 28-32 px images; at photo sizes its
first layer grows with C*H*W (224 px RGB -> 77M weights), so use a CNN there.

Usage:
    model = create_model("linear", in_channels=1, num_classes=10, img_size=28, mean=(0.13,), std=(0.31,))
    pictures = linear_weight_images(model)      # [10, 1, 28, 28]
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from sortnet.models.base import SortnetModel
from sortnet.models.family import ModelDefaults, register_model

MLP_WIDTHS = (512, 256)  # hidden widths: wide enough for MNIST ~98%, small enough to train in seconds
MLP_DROPOUT = 0.2  # after each hidden layer (the last one via SortnetModel's head dropout)


# linear / mlp converge in fewer passes and overfit sooner; AdamW lr 1e-3 suits raw-pixel inputs
# no shifts in short runs: a linear model cannot learn them away (5 epochs on 6,400 digit-like images with 2 px
# shifts: 45.7% training, 55.5% test accuracy; without: 62.1% test, as LogisticRegression's 62.5%)
SIMPLE = ModelDefaults(optimizer="adamw", lr=1e-3, batch_small=256, batch_large=256, epochs_scale=0.5, min_epochs=5,
                       memorises_small_data=False)
# One layer is a convex problem and takes a larger step: 5 epochs at lr 1e-3 ended far from the optimum
# (scikit-learn's 8x8 digits 55% test, Fashion-MNIST 81.3%); at 3e-3 77% / 81.9%, at 1e-2 81% / 82.3%, but
# 1e-2 oscillates where many pixels move together (solid colours: AdamW moves a logit by lr x their count).
LINEAR = dataclasses.replace(SIMPLE, lr=3e-3)


@register_model("linear", "Linear classifier on raw pixels (no hidden layer); weights are class pictures",
                "simple", LINEAR)
def _linear(in_channels: int, img_size: int):
    # body only flattens; SortnetModel's head is the single Linear(C*H*W, K)
    return nn.Flatten(), in_channels * img_size * img_size, 0.0


@register_model("mlp", "Multilayer perceptron: flatten -> 512 -> 256 (ReLU, dropout 0.2); for <= 32 px", "simple",
                SIMPLE)
def _mlp(in_channels: int, img_size: int):
    pixels = in_channels * img_size * img_size
    body = nn.Sequential(
        nn.Flatten(),  # [B, C, H, W] -> [B, C*H*W]
        nn.Linear(pixels, MLP_WIDTHS[0]),
        nn.ReLU(),
        nn.Dropout(MLP_DROPOUT),
        nn.Linear(MLP_WIDTHS[0], MLP_WIDTHS[1]),
        nn.ReLU(),
    )
    return body, MLP_WIDTHS[1], MLP_DROPOUT


def linear_weight_images(model: SortnetModel) -> torch.Tensor:
    """[K, C, H, W] head weights of a `linear` model: how much each (normalized) pixel votes for each class."""
    if not isinstance(model.body, nn.Flatten):
        raise ValueError("linear_weight_images needs a 'linear' model (body is a plain Flatten)")
    channels = model.normalize.scale.shape[1]
    side = int(round((model.num_features / channels) ** 0.5))  # registered models are square
    return model.head.weight.detach().reshape(model.num_classes, channels, side, side)
