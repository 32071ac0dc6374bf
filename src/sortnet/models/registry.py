"""Model registry: names -> (factory, ModelDefaults); anything else is parsed as a layer spec string.

Every registered family declares what it wants in one ModelDefaults (input size, normalization, where
pretrained weights come from, recipe hints such as optimizer and learning rate); the recipe and data
preparation read these fields and never branch on model names.

Usage:
    model = create_model("mlp", in_channels=1, num_classes=10, img_size=28, mean=(0.5,), std=(0.25,))
    model = create_model("conv32 maxpool flatten dense128", 1, 10, 28, (0.5,), (0.25,))
    defaults = model_defaults("cnn-small")       # ModelDefaults(optimizer="sgd", lr=0.1, ...)
    for info in list_models(): print(info.name, info.description)
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from sortnet.config import ConfigError
from sortnet.models.base import SortnetModel

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

_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, description: str, family: str, defaults: ModelDefaults | None = None):
    """Decorator registering a body factory under name with its defaults."""

    def wrap(factory: BodyFactory) -> BodyFactory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelInfo(name, description, factory, family, defaults or ModelDefaults())
        return factory

    return wrap


def _ensure_loaded() -> None:
    # Importing these modules runs their @register_model decorators.
    from sortnet.models import cnn, simple, tv  # noqa: F401


def list_models() -> list[ModelInfo]:
    _ensure_loaded()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def is_registered(name: str) -> bool:
    _ensure_loaded()
    return name in _REGISTRY


def model_info(arch: str) -> ModelInfo | None:
    """The registry entry for a name, None for a layer spec string."""
    _ensure_loaded()
    return _REGISTRY.get(arch.strip())


def model_defaults(arch: str) -> ModelDefaults:
    """The family's declared defaults (layer specs get SPEC_DEFAULTS)."""
    info = model_info(arch)
    return info.defaults if info is not None else SPEC_DEFAULTS


def input_normalization(arch: str, data_mean: tuple[float, ...], data_std: tuple[float, ...]
                        ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the model normalizes its input with: the family's own (e.g. ImageNet's, for pretrained
    weights), else the data's. A grey input to a colour-normalized family gets the channel average."""
    d = model_defaults(arch)
    if d.mean is None:
        return tuple(data_mean), tuple(data_std)
    if len(d.mean) != len(data_mean):
        return (sum(d.mean) / len(d.mean),), (sum(d.std) / len(d.std),)
    return tuple(d.mean), tuple(d.std)


def create_model(
    arch: str,
    in_channels: int,
    num_classes: int,
    img_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> SortnetModel:
    """A SortnetModel for a registered name or a layer spec string (see sortnet.models.spec)."""
    arch = validate_arch(arch)
    if arch in _REGISTRY:
        info = _REGISTRY[arch]
        if img_size < info.defaults.min_img_size:
            raise ConfigError(f"model {arch!r} needs --img-size >= {info.defaults.min_img_size}, got {img_size}")
        body, num_features, head_dropout = info.factory(in_channels, img_size)
    else:
        from sortnet.models.spec import build_spec_body

        body, num_features, head_dropout = build_spec_body(arch, in_channels, img_size)
    return SortnetModel(body, num_features, num_classes, mean, std, head_dropout)


def validate_arch(arch: str) -> str:
    """The stripped name if it is registered or a well-formed layer spec; else ConfigError with suggestions."""
    _ensure_loaded()
    arch = arch.strip()
    if arch in _REGISTRY:
        return arch
    from sortnet.models.spec import looks_like_spec, parse_spec

    if not looks_like_spec(arch):
        close = difflib.get_close_matches(arch, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown model {arch!r}.{hint} Run `sortnet models` for the list, "
            "or give a layer spec such as 'conv32 maxpool flatten dense128'."
        )
    parse_spec(arch)  # raises with the offending token
    return arch
