"""sortnet's own CNNs: a fast whitened net for small images (<= 64 px) and a ResNet-style net for photos.

The small-image net follows the public CIFAR-10 speed-run recipe (airbench, arXiv 2404.00498): a frozen
2x2 patch-whitening first conv computed from the data, then conv-pool-BN-GELU blocks, global max pool.

Usage:
    model = create_model("cnn", in_channels=3, num_classes=10, img_size=32, mean=m, std=s)
    model.init_from_data(train_images_uint8[:5000])   # whitening filters from the data's patches
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from sortnet.models.family import ModelDefaults, register_model


# A whitening direction whose variance is under this fraction of eps would come out below 0.1 of unit size.
NULL_DIRECTION = 1e-2


class BatchNormFrozenScale(nn.BatchNorm2d):
    """BatchNorm with weight fixed at 1 (only the bias learns), as in the speed-run nets."""

    def __init__(self, num_features: int, momentum: float = 0.6, eps: float = 1e-3) -> None:
        # eps 1e-3, not the speed runs' 1e-12: BatchNorm turns a channel of (near-)zero variance -- dead after
        # GELU, 1x1 maps of 8 px images, the flat channels of solid-colour images -- into gradient x 1/sqrt(eps)
        # (1e6 at 1e-12: NaN within steps) and, in eval mode, noise x 1/sqrt(eps) (10% validation on `digits`);
        # at 1e-5 bf16's rounding noise (~2^-9 of a value) in such channels was still blown up to unit size and
        # solid-colour images did not train in bf16. Live channels have variance 0.02-1 here: 1e-3 hardly
        # touches them (Fashion-MNIST within noise, BENCHMARKS.md).
        # airbench convention: running = momentum * running + (1 - momentum) * batch; torch's is the reverse
        super().__init__(num_features, eps=eps, momentum=1 - momentum)
        self.weight.requires_grad = False


def _dirac_conv(c_in: int, c_out: int) -> nn.Conv2d:
    """3x3 conv, no bias; the first min(c_in, c_out) filters start as identity (Dirac init)."""
    conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding="same", bias=False)
    w = conv.weight.data
    torch.nn.init.dirac_(w[: min(c_in, c_out)])
    return conv


class ConvGroup(nn.Sequential):
    """conv -> maxpool2 -> BN -> GELU -> conv -> BN -> GELU; halves H and W."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            _dirac_conv(c_in, c_out),
            nn.MaxPool2d(2, ceil_mode=True),  # ceil: odd sizes keep their last row/column; works down to 2 px
            BatchNormFrozenScale(c_out),
            nn.GELU(),
            _dirac_conv(c_out, c_out),
            BatchNormFrozenScale(c_out),
            nn.GELU(),
        )


class WhitenedCNN(nn.Module):
    """[B, C, H, W] normalized -> [B, widths[-1]] features; H, W >= 3 (the 2x2 whitening conv takes 1 px)."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int] = (64, 256, 256)) -> None:
        super().__init__()
        self.patch = 2
        whiten_width = 2 * in_channels * self.patch**2  # each eigenvector as +/- filter pair
        self.whiten = nn.Conv2d(in_channels, whiten_width, kernel_size=self.patch, padding=0, bias=True)
        self.whiten.weight.requires_grad = False  # frozen; its bias still learns
        self.act = nn.GELU()
        groups, c = [], whiten_width
        for w in widths:
            groups.append(ConvGroup(c, w))
            c = w
        self.groups = nn.Sequential(*groups)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.out_features = c

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Set whitening filters from the eigen-decomposition of the 2x2 patch covariance of x [N, C, H, W]."""
        x = x.float()
        c, p = x.shape[1], self.patch
        patches = x.unfold(2, p, 1).unfold(3, p, 1)  # [N, C, H', W', p, p]
        patches = patches.transpose(1, 3).reshape(-1, c * p * p)  # [N*H'*W', C*p*p]
        patches = patches - patches.mean(0, keepdim=True)
        cov = patches.T @ patches / len(patches)
        eigvals, eigvecs = torch.linalg.eigh(cov.double())
        eigvals, eigvecs = eigvals.flip(0).float(), eigvecs.T.flip(0).float()  # descending
        filters = eigvecs / torch.sqrt(eigvals.clamp_min(0) + eps)[:, None]
        # Directions the data does not use (eigenvalue ~0: flat colours, constant borders) would amplify
        # rounding dirt by 1/sqrt(eps) into near-constant channels that bf16 quantizes and BatchNorm then
        # scales up to unit size (bf16 and fp32 features 100% apart on solid-colour images): filters off.
        filters[eigvals < eps * NULL_DIRECTION] = 0
        # unfold/transpose order above is (W', H', C, p_h, p_w) -> rows index (C, p_h, p_w) after reshape
        filters = filters.view(-1, c, p, p)
        self.whiten.weight.copy_(torch.cat([filters, -filters]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The whitening scales directions the data hardly uses by up to 1/sqrt(eps) = 45x; in bf16 (8-bit
        # mantissa) the rounding of its inputs lands in those directions and becomes a signal as large as the
        # image's own (flat or zero-background images). It is a small conv: always fp32.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = self.act(self.whiten(x.float()))
        x = self.groups(x)
        return self.pool(x).flatten(1)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BN, identity or 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        nn.init.zeros_(self.bn2.weight)  # each block starts as identity
        self.short = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.short(x))


class PhotoResNet(nn.Module):
    """ResNet-style net for photos (>= 64 px): stride-4 stem, four stages, global average pool."""

    def __init__(self, in_channels: int, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.Conv2d(widths[0], widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages, c = [], widths[0]
        for i, w in enumerate(widths):
            stages += [BasicBlock(c, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
            c = w
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_features = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x))).flatten(1)


# SGD-Nesterov at lr 0.1 per 256 images, as in the CIFAR-10 speed runs this net follows (airbench).
WHITENED = ModelDefaults(min_img_size=3, optimizer="sgd", lr=0.1, weight_decay=5e-4, batch_small=128, batch_large=64,
                         data_init=True)
# The three widths are one size group for --time-budget: the planner picks the widest that sees at least this many
# training images within the budget on the machine at hand (runs/planner.py). Measured on Fashion-MNIST
# (BENCHMARKS.md section 11, 2-core AVX2 CPU, whole-command budgets): cnn-small costs ~2.5x cnn-tiny per image;
# at 120 s cnn-tiny (155k images) beat cnn-small (98k) 92.3% to 91.0%, at 300 s cnn-small (180k images) beat
# cnn-tiny (520k) 93.2% to 92.1%: the threshold sits between, where the narrow net's capacity starts to limit it.
SIZE_GROUP = "whitened"


def _width(min_images: int) -> ModelDefaults:
    return dataclasses.replace(WHITENED, size_group=SIZE_GROUP, size_min_images=min_images)


@register_model("cnn-tiny", "Narrowest whitened CNN (16/32/64): most images per second, for short CPU budgets",
                "cnn", _width(0))
def _cnn_tiny(in_channels: int, img_size: int):
    body = WhitenedCNN(in_channels, (16, 32, 64))
    return body, body.out_features, 0.0


@register_model("cnn", "Whitened speed-run CNN for small images (<= 64 px), widths 64/256/256", "cnn",
                _width(3_000_000))
def _cnn(in_channels: int, img_size: int):
    body = WhitenedCNN(in_channels, (64, 256, 256))
    return body, body.out_features, 0.0


@register_model("cnn-small", "Narrower whitened CNN (32/64/128): fastest small-image model on a CPU", "cnn",
                _width(150_000))
def _cnn_small(in_channels: int, img_size: int):
    body = WhitenedCNN(in_channels, (32, 64, 128))
    return body, body.out_features, 0.0


@register_model("photo-resnet", "ResNet-style CNN for photos (>= 64 px), 2.8M parameters", "cnn",
                ModelDefaults(min_img_size=32, optimizer="sgd", lr=0.1, batch_small=128, batch_large=64))
def _photo_resnet(in_channels: int, img_size: int):
    body = PhotoResNet(in_channels)
    return body, body.out_features, 0.0
