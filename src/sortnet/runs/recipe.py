"""Turns a TrainConfig (with "auto" fields) plus the data into concrete hyperparameters.

The defaults adapt to image size, dataset size and model family; they are not tuned to one dataset.

Usage:
    recipe = resolve_recipe(cfg, bundle, device)
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import torch

from sortnet.config import TrainConfig
from sortnet.data.dataset import DataBundle
from sortnet.models.registry import SMALL_IMAGE_PX, ModelDefaults, model_defaults
from sortnet.runs.choice import resolve_choice
from sortnet.training.mirror import mirror_safe
from sortnet.training.recipe import Recipe

# A run this short (in passes over the data) underfits rather than overfits: regularisation (label
# smoothing, random shifts) then costs accuracy. Measured on Fashion-MNIST at 20 s and 100 s budgets
# (1 and 5 epochs): +4.1 and +0.9 points without them; BENCHMARKS.md section 3.
SHORT_RUN_EPOCHS = 6
# ...but only where the data are many: 6.4k handwritten digits in 5 passes without them ended at 99.4% training
# and 96.8% validation accuracy (issue 24), i.e. overfitting. Fashion-MNIST's 48k images are the measured case.
SHORT_RUN_MIN_IMAGES = 20_000
DEFAULT_LABEL_SMOOTHING = 0.1
# Small data: a short run needs optimizer steps more than big batches. Measured on 1,150 upscaled digits,
# 5 epochs, cnn-small: batch 128 (44 steps) 93.9%, batch 32 (179 steps) 99.7% (BENCHMARKS.md).
MIN_STEPS_PER_EPOCH = 32
MIN_RUN_STEPS = 160
# Built-in sets of symbols where a mirror image is another symbol (or no symbol): no flips there.
NO_FLIP_BUILTINS = ("mnist", "digits")


def small_data_batch(batch: int, n_train: int, epochs: int | None) -> int:
    """The family's batch, made smaller (a power of two >= 16) where the data are few: at least
    MIN_STEPS_PER_EPOCH steps per epoch and, when the epochs are given, MIN_RUN_STEPS steps in the run."""
    cap = n_train / MIN_STEPS_PER_EPOCH
    if epochs:
        cap = min(cap, epochs * n_train / MIN_RUN_STEPS)
    return int(min(batch, max(16, 2 ** int(math.log2(max(1.0, cap))))))


def auto_epochs(n_train: int, defaults: ModelDefaults) -> int:
    """Enough passes for ~400k images seen (fewer on big sets, more on tiny ones), within [min_epochs, 60]."""
    base = math.ceil(400_000 / max(1, n_train) * defaults.epochs_scale)
    return int(min(60, max(defaults.min_epochs, base)))


class Augment(NamedTuple):
    flip: bool
    translate: int  # px
    rrc: bool  # random-resized-crop
    note: str = ""  # why, when the data decided


def augmentation(cfg: TrainConfig, bundle: DataBundle) -> Augment:
    """Flip, translate px and random-resized-crop from cfg.augment, the source, the image size and the data."""
    size = bundle.preprocessing.img_size
    if cfg.augment != "auto":
        parts = set(cfg.augment.split("+")) - {"none"}
        return Augment("flip" in parts, (max(1, size // 14) if "crop" in parts else 0), "rrc" in parts)
    builtin = bundle.source.split(":", 1)[1] if bundle.source.startswith("builtin:") else None
    flip, note = builtin not in NO_FLIP_BUILTINS, ""
    if flip:  # other data are asked whether mirror images keep their class (training/mirror.py)
        flip, ratio = mirror_safe(bundle.train.images, bundle.train.labels)
        note = "" if flip else (f"no flips: mirrored images lose their class (nearest-class-mean accuracy "
                                f"x{ratio:.2f} when mirrored)")
    if size > SMALL_IMAGE_PX:
        return Augment(flip, 0, True, note)
    return Augment(flip, max(1, size // 14), False, note)  # 2 px at 28-32 px, as in the CIFAR speed runs


def resolve_recipe(cfg: TrainConfig, bundle: DataBundle, device: torch.device,
                   length: float | None = None, augment: Augment | None = None) -> Recipe:
    """length: planned passes over the data when a time budget decides it (else the epochs chosen here);
    augment: augmentation(cfg, bundle) when the caller already has it (it looks at the data)."""
    size = bundle.preprocessing.img_size
    choice = resolve_choice(cfg, bundle, device)
    arch = choice.arch
    d = model_defaults(arch, choice.pretrained)
    n_train = len(bundle.train)
    batch = cfg.batch_size or small_data_batch(d.batch_small if size <= SMALL_IMAGE_PX else d.batch_large,
                                               n_train, cfg.epochs)
    optimizer = cfg.optimizer if cfg.optimizer != "auto" else d.optimizer
    if cfg.lr is not None:
        lr = cfg.lr
    elif optimizer == d.optimizer:
        lr = d.lr * batch / 256 if optimizer == "sgd" else d.lr  # sgd: lr per 256 images, linear scaling
    else:  # the user switched the optimizer: generic peak lrs for it
        lr = 0.05 * batch / 256 if optimizer == "sgd" else 2e-3
    flip, translate, rrc, _ = augment if augment is not None else augmentation(cfg, bundle)
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
    many = n_train >= SHORT_RUN_MIN_IMAGES or not d.memorises_small_data
    return fit_to_length(recipe, cfg, float(length if length is not None else recipe.epochs), many)


def fit_to_length(recipe: Recipe, cfg: TrainConfig, epochs: float, underfits: bool = True) -> Recipe:
    """Regularisation for the run's real length (in passes): none of it in short runs, unless asked for, or
    unless the model could memorise its few images (underfits=False: fewer than SHORT_RUN_MIN_IMAGES for a
    model with the capacity to)."""
    short = epochs <= SHORT_RUN_EPOCHS and underfits
    smoothing = cfg.label_smoothing if cfg.label_smoothing is not None else (
        0.0 if short else DEFAULT_LABEL_SMOOTHING)
    translate = 0 if short and cfg.augment == "auto" else recipe.translate
    return dataclasses.replace(recipe, label_smoothing=smoothing, translate=translate,
                               tta_shift=recipe.tta_shift if translate > 0 else 0)
