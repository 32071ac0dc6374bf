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
    crop: float = 1.0  # centre-crop fraction of the shorter side (Preprocessing.crop); ImageNet evaluation: 0.875
    min_img_size: int = 1  # smaller inputs are refused
    channels: int | None = None  # 1 or 3 when the family needs one
    mean: tuple[float, ...] | None = None  # input normalization (0..1 scale); None: the data's own statistics
    std: tuple[float, ...] | None = None
    pretrained: str | None = None  # ImageNet weight source id (sortnet.models.pretrained); None: none exist
    pretrained_by_default: bool = False  # True: used unless --no-pretrained; False: only with --pretrained
    # fields replaced while the pretrained weights are used: their normalization and input size, fine-tuning
    # hints (registry.model_defaults(arch, pretrained=True) applies them)
    when_pretrained: dict = field(default_factory=dict)
    optimizer: str = "adamw"  # sgd | adamw
    lr: float = 2e-3  # peak learning rate; for sgd per 256 images of batch (scaled linearly with the batch)
    weight_decay: float = 5e-4
    batch_small: int = 256  # batch for images <= SMALL_IMAGE_PX
    batch_large: int = 64  # batch for larger images
    epochs_scale: float = 1.0  # x the default number of passes (simple models converge in fewer)
    min_epochs: int = 8
    data_init: bool = False  # needs init_from_data (patch whitening) before training
    # --time-budget with model auto: models naming the same size_group are one net at several widths; the
    # planner (runs/planner.py) picks the widest that sees >= size_min_images training images within
    # the budget on this machine (the narrowest takes 0). None: no such group.
    size_group: str | None = None
    size_min_images: int = 0
    # False: too little capacity to memorise a few thousand images in a short run (pixel models), so short runs
    # skip label smoothing and random shifts whatever the data size (runs/recipe.py fit_to_length)
    memorises_small_data: bool = True
    extra: dict = field(default_factory=dict)  # family-specific hints, documented where they are read


# Fine-tuning pretrained weights (fastai's fine_tune): AdamW, peak lr 1e-3 for the last layer group (earlier
# groups get less, see transfer/finetune.py), decoupled weight decay 0.01, batch 32 (224 px on a CPU).
FINETUNE_HINTS = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.01, "batch_large": 32, "min_epochs": 1,
                  "data_init": False}
# The centre crop ImageNet weights were evaluated with (TF EfficientNet: 224 of 224 + 32; torchvision: 224 of
# 256). On hymenoptera's val set the linear probe gained ~1 point from it over the whole shorter side.
IMAGENET_CROP = 0.875


def imagenet_weights(source: str, mean=IMAGENET_MEAN, std=IMAGENET_STD, img_size: int = 224, **more) -> dict:
    """ModelDefaults fields for a family with ImageNet weights: source id, normalization, size, fine-tuning hints."""
    return {"pretrained": source,
            "when_pretrained": {**FINETUNE_HINTS, "mean": tuple(mean), "std": tuple(std), "img_size": img_size,
                                "crop": IMAGENET_CROP, **more}}


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
