"""The training loop: resident uint8 data, whole-batch augmentation, autocast, events for everything else.

Everything random is derived from (seed, epoch), so a run resumed from an epoch checkpoint replays the
same batches, flips, shifts and dropout masks as an uninterrupted one.

Usage:
    trainer = Trainer(model, train_set, val_set, recipe, device=dev, dtype=torch.bfloat16, seed=0,
                      callbacks=[ProgressBar()])
    trainer.fit()
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from sortnet.data.dataset import ImageSet
from sortnet.infer.batch import TTA, predict_logits
from sortnet.train.augment import alternating_flip_mask, flip_batch, random_resized_crop, random_translate
from sortnet.train.device import autocast_context
from sortnet.train.events import Callback
from sortnet.train.recipe import Recipe
from sortnet.train.schedule import lr_multiplier


def build_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """No weight decay on biases and norm parameters (1-D tensors): decaying them only hurts."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": recipe.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=(0.9, 0.99))


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(seed * 1_000_003 + epoch)
    return g


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        train_set: ImageSet,
        val_set: ImageSet | None,
        recipe: Recipe,
        *,
        device: torch.device,
        dtype: torch.dtype | None,
        seed: int = 0,
        callbacks: list[Callback] | None = None,
    ) -> None:
        self.model = model.to(device).to(memory_format=torch.channels_last)
        self.recipe, self.device, self.dtype, self.seed = recipe, device, dtype, seed
        self.callbacks = list(callbacks or [])
        # Resident uint8 pixels: 1 byte/px, on the GPU when there is one (no loader workers needed).
        self.x = torch.as_tensor(train_set.images).to(device)
        self.y = torch.as_tensor(train_set.labels).to(device)
        self.val_set = val_set
        n = len(self.y)
        self.batch_size = min(recipe.batch_size, n)
        self.steps_per_epoch = max(1, n // self.batch_size)  # drop the ragged tail: BN needs full batches
        self.total_steps = recipe.epochs * self.steps_per_epoch
        self.opt = build_optimizer(self.model, recipe)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lr_multiplier(recipe.schedule, self.total_steps, recipe.warmup)
        )
        self.epoch = 0  # completed epochs
        self.history: list[dict] = []
        self.best = {"val_acc": -1.0, "epoch": -1}
        self.stop_requested = False

    # ---- state for checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "epoch": self.epoch,
            "history": self.history,
            "best": self.best,
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.epoch, self.history, self.best = state["epoch"], list(state["history"]), dict(state["best"])
        torch.set_rng_state(state["torch_rng"])

    # ---- one batch ---------------------------------------------------------------------------
    def augment(self, xb: torch.Tensor, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        r = self.recipe
        if r.translate:
            xb = random_translate(xb, r.translate, gen)
        if r.flip:
            xb = flip_batch(xb, alternating_flip_mask(idx, self.epoch, self.seed))
        xb = xb.float()
        if r.rrc:
            xb = random_resized_crop(xb, gen)
        return xb.contiguous(memory_format=torch.channels_last)

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[float, int]:
        with autocast_context(self.device, self.dtype):
            logits = self.model(xb)
        loss = F.cross_entropy(logits.float(), yb, label_smoothing=self.recipe.label_smoothing)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        correct = int((logits.argmax(1) == yb).sum())
        return float(loss.detach()), correct

    # ---- epochs ------------------------------------------------------------------------------
    def train_epoch(self) -> dict:
        self.model.train()
        gen = epoch_generator(self.seed, self.epoch, self.device)
        torch.manual_seed(self.seed * 7919 + self.epoch)  # dropout masks
        perm = torch.randperm(len(self.y), generator=gen).to(self.device)
        loss_sum, correct, seen, t0 = 0.0, 0, 0, time.perf_counter()
        for step in range(self.steps_per_epoch):
            idx = perm[step * self.batch_size : (step + 1) * self.batch_size]
            xb = self.augment(self.x[idx], idx, gen)
            loss, ok = self.train_step(xb, self.y[idx])
            loss_sum, correct, seen = loss_sum + loss * len(idx), correct + ok, seen + len(idx)
            for cb in self.callbacks:
                cb.on_batch_end(self, loss, ok, len(idx))
        elapsed = time.perf_counter() - t0
        return {"train_loss": loss_sum / seen, "train_acc": correct / seen, "epoch_seconds": elapsed,
                "images_per_second": seen / max(elapsed, 1e-9), "lr": self.opt.param_groups[0]["lr"]}

    def evaluate(self, data: ImageSet, tta: TTA | None = None) -> dict:
        logits = predict_logits(self.model, data.images, self.device, self.dtype, batch_size=512, tta=tta)
        labels = torch.as_tensor(data.labels)
        loss = float(F.cross_entropy(logits, labels)) if len(labels) else math.nan
        acc = float((logits.argmax(1) == labels).float().mean()) if len(labels) else math.nan
        return {"loss": loss, "acc": acc}

    def fit(self) -> list[dict]:
        for cb in self.callbacks:
            cb.on_train_start(self)
        while self.epoch < self.recipe.epochs and not self.stop_requested:
            metrics = {"epoch": self.epoch + 1, **self.train_epoch()}
            if self.val_set is not None and len(self.val_set):
                val = self.evaluate(self.val_set)
                metrics.update(val_loss=val["loss"], val_acc=val["acc"])
                if val["acc"] > self.best["val_acc"]:
                    self.best = {"val_acc": val["acc"], "epoch": self.epoch + 1}
            self.epoch += 1
            self.history.append(metrics)
            for cb in self.callbacks:
                cb.on_epoch_end(self, metrics)
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def tta(self) -> TTA:
        return TTA(flip=self.recipe.tta_flip, shift=self.recipe.tta_shift)
