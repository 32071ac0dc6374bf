"""Model families: what a registered model declares (ModelDefaults) and the decorator that registers it.

A leaf module (imports nothing from sortnet.models), so the family modules (cnn, simple, tv, ...)
register themselves here while sortnet.models.registry imports them: no import cycle.

Usage:
    @register_model("mlp", "two hidden layers", family="simple", defaults=ModelDefaults(optimizer="adamw"))
    def _mlp(in_channels: int, img_size: int): ...      # -> (body, num_features, head_dropout)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

# Image side (px) at or below which an image counts as "small" (MNIST, CIFAR, icons): the whitened
# speed-run CNN is the auto choice there, and torchvision nets get a stride-1 stem. The one definition.
SMALL_IMAGE_PX = 64

# factory(in_channels, img_size) -> (body, num_features, head_dropout); body maps normalized
# [B, C, H, W] to features [B, F]
BodyFactory = Callable[[int, int], tuple[nn.Module, int, float]]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelDefaults:
    """What a model family wants; None means "decide from the data"."""

    img_size: int | None = None  # preferred square input side (px); pretrained nets want their training size
    min_img_size: int = 1  # smaller inputs are refused
    channels: int | None = None  # 1 or 3 when the family needs one
    mean: tuple[float, ...] | None = None  # input normalization (0..1 scale); None: the data's own statistics
    std: tuple[float, ...] | None = None
    pretrained: str | None = None  # weight source id (see the pretrained-weights module), None: random init
    optimizer: str = "adamw"  # sgd | adamw
    lr: float = 2e-3  # peak learning rate; for sgd per 256 images of batch (scaled linearly with the batch)
    weight_decay: float = 5e-4
    batch_small: int = 256  # batch for images <= SMALL_IMAGE_PX
    batch_large: int = 64  # batch for larger images
    epochs_scale: float = 1.0  # x the default number of passes (simple models converge in fewer)
    min_epochs: int = 8
    data_init: bool = False  # needs init_from_data (patch whitening) before training
    extra: dict = field(default_factory=dict)  # family-specific hints, documented where they are read


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    factory: BodyFactory
    family: str  # "simple" | "cnn" | "torchvision" | ... (for listing and grouping only, never for choices)
    defaults: ModelDefaults

    @property
    def kind(self) -> str:  # the older name of `family`
        return self.family

    @property
    def min_img_size(self) -> int:
        return self.defaults.min_img_size


SPEC_DEFAULTS = ModelDefaults(batch_large=256)  # layer spec strings: AdamW is forgiving across architectures

REGISTRY: dict[str, ModelInfo] = {}  # name -> ModelInfo, filled by @register_model; read via sortnet.models.registry


def register_model(name: str, description: str, family: str, defaults: ModelDefaults | None = None):
    """Decorator registering a body factory under name with its defaults."""

    def wrap(factory: BodyFactory) -> BodyFactory:
        if name in REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        REGISTRY[name] = ModelInfo(name, description, factory, family, defaults or ModelDefaults())
        return factory

    return wrap
