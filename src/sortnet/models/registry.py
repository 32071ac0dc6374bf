"""Model registry: names -> (factory, ModelDefaults); anything else is parsed as a layer spec string.

Every registered family declares what it wants in one ModelDefaults (input size, normalization, where
pretrained weights come from, recipe hints such as optimizer and learning rate); the recipe and data
preparation read these fields and never branch on model names.

Usage:
    model = create_model("mlp", in_channels=1, num_classes=10, img_size=28, mean=(0.5,), std=(0.25,))
    model = create_model("conv32 maxpool flatten dense128", 1, 10, 28, (0.5,), (0.25,))
    defaults = model_defaults("cnn-small")       # ModelDefaults(optimizer="sgd", lr=0.1, ...)
    defaults = model_defaults("resnet18", pretrained=True)   # ImageNet normalization, 224 px, fine-tuning hints
    model = create_model("timm:resnet18", 3, 10, 224, IMAGENET_MEAN, IMAGENET_STD)   # when timm is installed
    for info in list_models(): print(info.name, info.description)
"""
from __future__ import annotations

import dataclasses
import difflib

from sortnet.config import ConfigError
from sortnet.models.base import SortnetModel
from sortnet.models.family import (  # noqa: F401 - re-exported: the registry's public names
    IMAGENET_MEAN, IMAGENET_STD, SMALL_IMAGE_PX, SPEC_DEFAULTS, BodyFactory, ModelDefaults, ModelInfo, REGISTRY,
    imagenet_weights, register_model)


def _ensure_loaded() -> None:
    # Importing these modules runs their @register_model decorators.
    from sortnet.models import cnn, efficientnet_lite, simple, tv  # noqa: F401


def list_models() -> list[ModelInfo]:
    _ensure_loaded()
    return [REGISTRY[k] for k in sorted(REGISTRY)]


def is_registered(name: str) -> bool:
    _ensure_loaded()
    return name in REGISTRY


def model_info(arch: str) -> ModelInfo | None:
    """The registry entry for a name, None for a layer spec string."""
    _ensure_loaded()
    return REGISTRY.get(arch.strip())


def model_defaults(arch: str, pretrained: bool = False) -> ModelDefaults:
    """The family's declared defaults (layer specs get SPEC_DEFAULTS); pretrained: with when_pretrained applied."""
    if arch.strip().startswith("timm:"):
        from sortnet.models.timm_models import timm_defaults

        d = timm_defaults(arch.strip())
    else:
        info = model_info(arch)
        d = info.defaults if info is not None else SPEC_DEFAULTS
    if pretrained and d.pretrained is None:
        raise ConfigError(f"model {arch!r} has no pretrained weights; models with ImageNet weights: "
                          f"{', '.join(m.name for m in list_models() if m.defaults.pretrained)}, timm:NAME")
    return dataclasses.replace(d, **d.when_pretrained) if pretrained else d


def size_group_models(arch: str) -> list[str]:
    """The models of arch's size group (one net at several widths), smallest (fewest size_min_images) first;
    [arch] when it has none."""
    group = model_defaults(arch).size_group
    if group is None:
        return [arch]
    members = [info for info in list_models() if info.defaults.size_group == group]
    return [info.name for info in sorted(members, key=lambda i: (i.defaults.size_min_images, i.name))]


def input_normalization(arch: str, data_mean: tuple[float, ...], data_std: tuple[float, ...],
                        pretrained: bool = False) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the model normalizes its input with: the family's own (e.g. ImageNet's, for pretrained
    weights), else the data's. A grey input to a colour-normalized family gets the channel average."""
    d = model_defaults(arch, pretrained)
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
    if arch.startswith("timm:"):
        from sortnet.models.timm_models import timm_body

        body, num_features, head_dropout = timm_body(arch, in_channels)
    elif arch in REGISTRY:
        info = REGISTRY[arch]
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
    if arch in REGISTRY:
        return arch
    if arch.startswith("timm:"):
        from sortnet.models.timm_models import check_timm_name

        return check_timm_name(arch)
    from sortnet.models.spec import looks_like_spec, parse_spec

    if not looks_like_spec(arch):
        close = difflib.get_close_matches(arch, list(REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown model {arch!r}.{hint} Run `sortnet models` for the list, "
            "or give a layer spec such as 'conv32 maxpool flatten dense128'."
        )
    parse_spec(arch)  # raises with the offending token
    return arch
