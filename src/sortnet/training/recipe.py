"""Turns a TrainConfig (with "auto" fields) plus the data into concrete hyperparameters.

The defaults adapt to image size, dataset size and model family; they are not tuned to one dataset.

Usage:
    recipe = resolve_recipe(cfg, bundle, device)
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

import torch

from sortnet.config import TrainConfig
from sortnet.data.dataset import DataBundle
from sortnet.models.registry import SMALL_IMAGE_PX, ModelDefaults, model_defaults
from sortnet.training.choice import resolve_choice
# A run this short (in passes over the data) underfits rather than overfits: regularisation (label
# smoothing, random shifts) then costs accuracy. Measured on Fashion-MNIST at 20 s and 100 s budgets
# (1 and 5 epochs): +4.1 and +0.9 points without them; BENCHMARKS.md section 3.
SHORT_RUN_EPOCHS = 6
DEFAULT_LABEL_SMOOTHING = 0.1
# Built-in sets of symbols where a mirror image is another symbol (or no symbol): no flips there.
NO_FLIP_BUILTINS = ("mnist", "digits")


@dataclass
class Recipe:
    model: str
    epochs: int
    batch_size: int
    lr: float  # peak learning rate
    optimizer: str  # sgd | adamw
    weight_decay: float
    schedule: str
    warmup: float
    label_smoothing: float
    flip: bool
    translate: int  # px of random shift (reflect padded)
    rrc: bool  # random-resized-crop (photos)
    tta_flip: bool
    tta_shift: int
    total_steps: int | None = None  # set by --time-budget: may end inside an epoch
    pretrained: bool = False  # the body starts from ImageNet weights (sortnet.models.pretrained)
    finetune: str = "none"  # pretrained: "head" (frozen body, cached features) | "full" (then all layers)
    views: int = 0  # head: views per training image whose features are cached (orig, flip, crops)
    layer_lr: list[float] | None = None  # lr multipliers of consecutive body chunks (early -> late); head: 1
    bn_frozen: bool = False  # BatchNorm running statistics kept (eval mode) while training

    def to_dict(self) -> dict:
        return asdict(self)


def auto_epochs(n_train: int, defaults: ModelDefaults) -> int:
    """Enough passes for ~400k images seen (fewer on big sets, more on tiny ones), within [min_epochs, 60]."""
    base = math.ceil(400_000 / max(1, n_train) * defaults.epochs_scale)
    return int(min(60, max(defaults.min_epochs, base)))


def _augmentation(cfg: TrainConfig, bundle: DataBundle) -> tuple[bool, int, bool]:
    """(flip, translate px, random-resized-crop) from cfg.augment, the source and the image size."""
    size = bundle.preprocessing.img_size
    if cfg.augment != "auto":
        parts = set(cfg.augment.split("+")) - {"none"}
        return "flip" in parts, (max(1, size // 14) if "crop" in parts else 0), "rrc" in parts
    builtin = bundle.source.split(":", 1)[1] if bundle.source.startswith("builtin:") else None
    flip = builtin not in NO_FLIP_BUILTINS
    if size > SMALL_IMAGE_PX:
        return flip, 0, True
    return flip, max(1, size // 14), False  # 2 px at 28-32 px, as in the CIFAR speed runs


def resolve_recipe(cfg: TrainConfig, bundle: DataBundle, device: torch.device,
                   length: float | None = None) -> Recipe:
    """length: planned passes over the data when a time budget decides it (else the epochs chosen here)."""
    size = bundle.preprocessing.img_size
    choice = resolve_choice(cfg, bundle, device)
    arch = choice.arch
    d = model_defaults(arch, choice.pretrained)
    n_train = len(bundle.train)
    batch = d.batch_small if size <= SMALL_IMAGE_PX else d.batch_large
    # small sets: at least ~8 steps per epoch, and a power of two >= 16
    batch = cfg.batch_size or min(batch, max(16, 2 ** int(math.log2(max(16, n_train // 8)))))
    optimizer = cfg.optimizer if cfg.optimizer != "auto" else d.optimizer
    if cfg.lr is not None:
        lr = cfg.lr
    elif optimizer == d.optimizer:
        lr = d.lr * batch / 256 if optimizer == "sgd" else d.lr  # sgd: lr per 256 images, linear scaling
    else:  # the user switched the optimizer: generic peak lrs for it
        lr = 0.05 * batch / 256 if optimizer == "sgd" else 2e-3
    flip, translate, rrc = _augmentation(cfg, bundle)
    recipe = Recipe(
        model=arch,
        epochs=cfg.epochs or auto_epochs(n_train, d),
        batch_size=batch,
        lr=lr,
        optimizer=optimizer,
        weight_decay=cfg.weight_decay if cfg.weight_decay is not None else d.weight_decay,
        schedule=cfg.schedule,
        warmup=cfg.warmup,
        label_smoothing=cfg.label_smoothing,
        flip=flip,
        translate=translate,
        rrc=rrc,
        tta_flip=cfg.tta and flip,
        tta_shift=1 if cfg.tta and translate > 0 else 0,
        pretrained=choice.pretrained,
    )
    return fit_to_length(recipe, cfg, float(length if length is not None else recipe.epochs))


def fit_to_length(recipe: Recipe, cfg: TrainConfig, epochs: float) -> Recipe:
    """Regularisation for the run's real length (in passes): none of it in short runs, unless asked for."""
    short = epochs <= SHORT_RUN_EPOCHS
    smoothing = cfg.label_smoothing if cfg.label_smoothing is not None else (
        0.0 if short else DEFAULT_LABEL_SMOOTHING)
    translate = 0 if short and cfg.augment == "auto" else recipe.translate
    return dataclasses.replace(recipe, label_smoothing=smoothing, translate=translate,
                               tta_shift=recipe.tta_shift if translate > 0 else 0)
