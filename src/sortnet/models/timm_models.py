"""`timm:NAME`: any timm model as a sortnet body (when timm is installed); ImageNet weights via pretrained.py.

The body is `timm.create_model(NAME, pretrained=False, num_classes=0, in_chans=C)`: timm's own global
pooling, features [B, model.num_features]. Building never downloads; a model file saved from a timm
body needs timm installed to be loaded again (its architecture lives in timm).

Usage:
    body, num_features, dropout = timm_body("timm:resnet18", in_channels=3)
"""
from __future__ import annotations

import dataclasses

from sortnet.config import ConfigError

PREFIX = "timm:"


def _timm():
    try:
        import timm
    except ImportError as e:
        raise ConfigError("timm models need timm: `pip install timm` (then e.g. --model timm:resnet18)") from e
    return timm


def check_timm_name(arch: str) -> str:
    """arch ("timm:NAME") if timm is installed and knows NAME; else ConfigError with close names."""
    timm = _timm()
    name = arch.removeprefix(PREFIX).strip()
    if not name or not timm.is_model(name):
        close = timm.list_models(f"*{name[:6]}*")[:5] if name else []
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise ConfigError(f"timm has no model {name!r}.{hint} `python -c \"import timm; "
                          f"print(timm.list_models(pretrained=True))\"` lists them.")
    return PREFIX + name


def timm_body(arch: str, in_channels: int):
    net = _timm().create_model(arch.removeprefix(PREFIX), pretrained=False, num_classes=0, in_chans=in_channels)
    return net, int(net.num_features), float(getattr(net, "drop_rate", 0.0) or 0.0)


def timm_defaults(arch: str):
    """ModelDefaults of a timm model: AdamW from scratch; its pretrained_cfg's normalization and input size."""
    from sortnet.models.family import SPEC_DEFAULTS, imagenet_weights

    cfg = _timm().create_model(arch.removeprefix(PREFIX), pretrained=False).pretrained_cfg
    weights = imagenet_weights(arch, tuple(cfg["mean"]), tuple(cfg["std"]), int(cfg["input_size"][-1]))
    return dataclasses.replace(SPEC_DEFAULTS, min_img_size=32, pretrained_by_default=True, **weights)
