"""Fine-tuning a pretrained body, fastai's recipe: the head first, then every layer with discriminative lrs.

Stage 1 (always) is the head on cached features (sortnet.transfer.head): fastai's "frozen epoch", in
seconds instead of a pass through the body. Stage 2 (`--finetune full`) unfreezes everything:
- AdamW at half the family's fine-tuning lr (fastai halves it after the frozen stage), one-cycle;
- discriminative learning rates: the body cut into two chunks at lr/100 and lr/10, the head at lr
  (fastai's slice(lr/100, lr) over three layer groups): early ImageNet features change least;
- BatchNorm running statistics frozen (eval mode; their scale/shift still train): batches of 32 photos
  give noisy statistics that would overwrite ImageNet's (Keras' fine-tuning guide does the same);
- photo augmentation (random-resized crops, flips), label smoothing only for longer runs.

`choose_finetune` decides `--finetune auto`: a GPU fine-tunes fully; a CPU without --time-budget keeps
the head; with one, every layer when the budget leaves room for FULL_MIN_EPOCHS passes through the whole
network (one training step is timed) and there are at least FULL_MIN_IMAGES images, else partial
fine-tuning of the last blocks (transfer/partial_fit.py: how many from measured costs, or the head alone
when even one block does not fit); the reason is printed either way.

Usage:
    mode, why = choose_finetune(cfg, model, bundle, device, budget_left=90.0)
    recipe = finetune_recipe(recipe, cfg, n_train)
"""
from __future__ import annotations

import dataclasses
import math
import time

import torch
import torch.nn.functional as F

from sortnet.models.registry import model_defaults

LAYER_LR = [0.01, 0.1]  # body chunks (early -> late) x lr; the head gets 1x
FULL_MIN_EPOCHS = 3  # a full fine-tune shorter than this rarely beats the head alone
FULL_MIN_IMAGES = 200  # fewer training images: 3-25M parameters overfit; the head alone is safer
TRAIN_COST = 3.0  # a training step costs ~3 forward passes (forward + backward)


def finetune_epochs(n_train: int) -> int:
    """Passes for a full fine-tune without a budget: ~30k images seen, within [2, 10] (pretrained nets need few)."""
    return int(min(10, max(2, math.ceil(30_000 / max(1, n_train)))))


def finetune_recipe(recipe, cfg, n_train: int):
    """The recipe of stage 2 (every layer trains)."""
    d = model_defaults(recipe.model, pretrained=True)
    return dataclasses.replace(recipe, finetune="full", lr=cfg.lr if cfg.lr is not None else d.lr / 2,
                               layer_lr=list(LAYER_LR), bn_frozen=True,
                               epochs=cfg.epochs or finetune_epochs(n_train))


def seconds_per_training_image(model, img_size: int, channels: int, device, batch: int = 8) -> float:
    """One timed training step (forward + backward) of a copy-free throwaway batch, per image."""
    x = torch.randint(0, 256, (batch, channels, img_size, img_size), dtype=torch.uint8).float().to(device)
    y = torch.zeros(batch, dtype=torch.long, device=device)
    model.to(device).train()
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    model.eval()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / batch


def partial_blocks(cfg) -> int | None:
    """N of --finetune partial:N; None: the planner chooses (partial, or auto)."""
    return int(cfg.finetune.split(":", 1)[1]) if cfg.finetune.startswith("partial:") else None


def can_split(model) -> bool:
    """Partial fine-tuning needs a body that can be cut into a frozen front and a trainable tail."""
    return callable(getattr(getattr(model, "body", None), "split", None))


def choose_finetune(cfg, model, bundle, device, budget_left: float | None) -> tuple[str, str]:
    """("head" | "partial" | "full", why) for cfg.finetune (auto decides by device, data size and budget).

    "partial" from auto means: extract activations, fit the head, then the planner (transfer/partial_fit.py)
    measures the tail's cost and trains the last blocks in the rest of the budget, or keeps the head."""
    if cfg.finetune != "auto":
        return cfg.finetune.split(":")[0], f"--finetune {cfg.finetune}"
    n = len(bundle.train)
    if device.type == "cuda":
        return "full", "GPU: head first, then every layer with discriminative learning rates"
    if budget_left is None:
        return "head", ("CPU, no --time-budget: frozen backbone, linear head on cached features (seconds); "
                        "--finetune partial / full or a --time-budget fine-tunes")
    val = getattr(bundle, "val", None)
    partial_ok = can_split(model) and val is not None and len(val) > 0
    if n < FULL_MIN_IMAGES:
        if partial_ok:
            return "partial", (f"{n} training images: too few for every layer; the last blocks train on cached "
                               "activations if the budget allows, the best validated epoch kept (head-only included)")
        return "head", f"{n} training images: a linear head on the frozen backbone is safest (--finetune full)"
    p = bundle.preprocessing
    per_image = seconds_per_training_image(model, p.img_size, p.channels, device)
    epoch = per_image * n
    if budget_left >= FULL_MIN_EPOCHS * epoch:
        return "full", f"the budget leaves {budget_left:.0f}s, >= {FULL_MIN_EPOCHS} passes at ~{epoch:.0f}s each"
    if partial_ok:
        return "partial", (f"CPU: one pass through every layer takes ~{epoch:.0f}s here, {FULL_MIN_EPOCHS} do not fit "
                           f"the {budget_left:.0f}s left; the last blocks train on cached activations instead, as "
                           "many as the rest of the budget allows (measured after extraction)")
    return "head", (f"CPU: one pass through every layer takes ~{epoch:.0f}s here, {FULL_MIN_EPOCHS} do not fit the "
                    f"{budget_left:.0f}s left; frozen backbone + linear head (--finetune full to force)")
