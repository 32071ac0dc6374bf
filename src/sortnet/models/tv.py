"""torchvision architectures as sortnet bodies: ResNet-18/50, DenseNet-121, VGG-16, MobileNet-V3-Large,
EfficientNet-B0, ConvNeXt-Tiny. Built randomly initialized; `--pretrained` loads torchvision's ImageNet
weights afterwards (sortnet.models.pretrained), so rebuilding a saved model never downloads anything.

Each body returns a feature vector; SortnetModel adds the Linear head. Choices:
- First conv takes in_channels (1 or 3) instead of torchvision's fixed 3.
- Small inputs (img_size <= SMALL_IMAGE_PX, e.g. MNIST 28 px, CIFAR 32 px): ResNet and DenseNet get the CIFAR-style
  stem (3x3 stride-1 conv, no max pool), so a 32 px image reaches the last stage at 4x4 instead of 1x1.
  The stem depends on img_size, so a saved model must be rebuilt with the same img_size (it is in the model file).
- Classifier replaced by Identity. Features: resnet18 512, resnet50 2048, densenet121 1024, vgg16 512 —
  VGG-16 keeps its 13 conv layers but its 4096-wide fc6/fc7 are dropped for a global average pool
  (as CIFAR VGGs do): fc6 alone would be 103M weights (~400 MB) for no gain on small images.
- ResNets start each residual branch at zero (zero_init_residual), which trains better from scratch.
- MobileNet-V3-Large, EfficientNet-B0, ConvNeXt-Tiny: only the classifier's final Linear is dropped
  (features 1280, 1280, 768); no small-input stem (use them at >= 64 px, ideally 224 as trained).
- With ImageNet weights (`--pretrained`): ImageNet normalization, 224 px; ResNet/DenseNet need the ImageNet
  stem, so more than SMALL_IMAGE_PX.

Usage:
    model = create_model("resnet18", in_channels=3, num_classes=10, img_size=32, mean=m, std=s)
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from sortnet.models.family import SMALL_IMAGE_PX, ModelDefaults, imagenet_weights, register_model

# From scratch: SGD-Nesterov lr 0.1 per 256 images, torchvision's reference recipe.
TORCHVISION = ModelDefaults(min_img_size=16, optimizer="sgd", lr=0.1, weight_decay=5e-4, batch_small=128, batch_large=64)


def _tv(arch: str, min_img_size: int = 16, pretrained_min: int = 32) -> ModelDefaults:
    """TORCHVISION defaults + torchvision's ImageNet weights for arch (their weights API names the file)."""
    return dataclasses.replace(TORCHVISION, min_img_size=min_img_size,
                               **imagenet_weights(f"torchvision:{arch}", min_img_size=pretrained_min))


STEM_PRETRAINED_MIN = SMALL_IMAGE_PX + 1  # the ImageNet stem is used above SMALL_IMAGE_PX only


def _tvm():
    """torchvision.models, imported when a torchvision net is built: importing it loads torch._dynamo
    (about as long as importing torch), which runs of sortnet's own nets should not pay."""
    from torchvision import models

    return models


def _resnet(ctor: Callable[..., nn.Module], in_channels: int, img_size: int):
    """ResNet body: [B, C, H, W] -> [B, fc.in_features]."""
    net = ctor(weights=None, zero_init_residual=True)
    if img_size <= SMALL_IMAGE_PX:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    else:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision does
    features = net.fc.in_features
    net.fc = nn.Identity()
    return net, features, 0.0


def _densenet121(in_channels: int, img_size: int):
    """DenseNet-121 body: [B, C, H, W] -> [B, 1024]."""
    net = _tvm().densenet121(weights=None)
    if img_size <= SMALL_IMAGE_PX:
        net.features.conv0 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.features.pool0 = nn.Identity()
    else:
        net.features.conv0 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(net.features.conv0.weight)  # as torchvision does
    features = net.classifier.in_features
    net.classifier = nn.Identity()
    return net, features, 0.0


class VGGFeatures(nn.Module):
    """VGG conv stack + global average pool; `features.N` names match torchvision's for later weight loading."""

    def __init__(self, in_channels: int, config: str = "D") -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs as vgg_cfgs
        from torchvision.models.vgg import make_layers

        # make_layers builds only the conv stack; tvm.vgg16() would also allocate fc6 (103M weights, ~2 s).
        self.features = make_layers(vgg_cfgs[config], batch_norm=False)
        self.features[0] = nn.Conv2d(in_channels, 64, kernel_size=3, padding=1)
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):  # torchvision VGG's init
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_features = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.avgpool(self.features(x)).flatten(1)  # [B, 512]


def _vgg16(in_channels: int, img_size: int):
    """VGG-16 conv layers + global average pool: [B, C, H, W] -> [B, 512]. Five 2x2 pools: needs >= 32 px."""
    net = VGGFeatures(in_channels, "D")  # config "D" = VGG-16
    return net, net.out_features, 0.0


def _replace_first_conv(net: nn.Module, in_channels: int) -> None:
    """The first Conv2d rebuilt for in_channels (1 for grey) with torchvision's init; 3 leaves it as is."""
    name, conv = next((n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d))
    if conv.in_channels == in_channels:
        return
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    conv.groups, conv.bias is not None)
    nn.init.kaiming_normal_(new.weight, mode="fan_out")
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    net.set_submodule(name, new)


def _classifier_dropped(ctor: Callable[..., nn.Module], in_channels: int, drop: tuple[int, ...] = ()):
    """torchvision net whose classifier's final Linear (and the layers `drop` names) are Identity:
    [B, C, H, W] -> [B, that Linear's in_features]."""
    net = ctor(weights=None)
    _replace_first_conv(net, in_channels)
    last = len(net.classifier) - 1
    features = net.classifier[last].in_features
    for i in (*drop, last):
        net.classifier[i] = nn.Identity()
    return net, features


@register_model("resnet18", "torchvision ResNet-18 (11M params); CIFAR stem at <= 64 px; --pretrained: ImageNet",
                "torchvision", _tv("resnet18", pretrained_min=STEM_PRETRAINED_MIN))
def _resnet18(in_channels: int, img_size: int):
    return _resnet(_tvm().resnet18, in_channels, img_size)


@register_model("resnet50", "torchvision ResNet-50 (24M params); CIFAR stem at <= 64 px; --pretrained: ImageNet",
                "torchvision", _tv("resnet50", pretrained_min=STEM_PRETRAINED_MIN))
def _resnet50(in_channels: int, img_size: int):
    return _resnet(_tvm().resnet50, in_channels, img_size)


@register_model("densenet121", "torchvision DenseNet-121 (7M params); CIFAR stem at <= 64 px; --pretrained: "
                "ImageNet", "torchvision", _tv("densenet121", pretrained_min=STEM_PRETRAINED_MIN))
def _densenet121_factory(in_channels: int, img_size: int):
    return _densenet121(in_channels, img_size)


@register_model("vgg16", "torchvision VGG-16 conv layers + global average pool (15M params); --pretrained: "
                "ImageNet", "torchvision", _tv("vgg16", min_img_size=32))
def _vgg16_factory(in_channels: int, img_size: int):
    return _vgg16(in_channels, img_size)


@register_model("mobilenet_v3_large", "torchvision MobileNet-V3-Large (4M params); --pretrained: ImageNet",
                "torchvision", _tv("mobilenet_v3_large", min_img_size=32))
def _mobilenet_v3_large(in_channels: int, img_size: int):
    net, features = _classifier_dropped(_tvm().mobilenet_v3_large, in_channels, drop=(2,))  # 2: its dropout
    return net, features, 0.2  # SortnetModel's head dropout replaces the dropped one


@register_model("efficientnet_b0", "torchvision EfficientNet-B0 (4M params); --pretrained: ImageNet",
                "torchvision", _tv("efficientnet_b0", min_img_size=32))
def _efficientnet_b0(in_channels: int, img_size: int):
    net, features = _classifier_dropped(_tvm().efficientnet_b0, in_channels, drop=(0,))  # 0: its dropout
    return net, features, 0.2


@register_model("convnext_tiny", "torchvision ConvNeXt-Tiny (28M params); --pretrained: ImageNet",
                "torchvision", _tv("convnext_tiny", min_img_size=32))
def _convnext_tiny(in_channels: int, img_size: int):
    net, features = _classifier_dropped(_tvm().convnext_tiny, in_channels)
    return net, features, 0.0
