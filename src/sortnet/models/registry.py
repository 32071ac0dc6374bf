"""Model registry: names -> factories; anything else is parsed as a layer spec string.

Usage:
    model = create_model("mlp", in_channels=1, num_classes=10, img_size=28, mean=(0.5,), std=(0.25,))
    model = create_model("conv32 maxpool flatten dense128", 1, 10, 28, (0.5,), (0.25,))
    for info in list_models(): print(info.name, info.description)
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from torch import nn

from sortnet.config import ConfigError
from sortnet.models.base import SortnetModel

# factory(in_channels, num_classes, img_size) -> (body, num_features, head_dropout)
BodyFactory = Callable[[int, int, int], tuple[nn.Module, int, float]]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    factory: BodyFactory
    kind: str  # "simple" | "cnn" | "torchvision"
    min_img_size: int = 1


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, description: str, kind: str, min_img_size: int = 1):
    """Decorator registering a body factory under name."""

    def wrap(factory: BodyFactory) -> BodyFactory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelInfo(name, description, factory, kind, min_img_size)
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
        if img_size < info.min_img_size:
            raise ConfigError(f"model {arch!r} needs --img-size >= {info.min_img_size}, got {img_size}")
        body, num_features, head_dropout = info.factory(in_channels, num_classes, img_size)
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
