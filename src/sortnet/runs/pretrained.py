"""A run on a pretrained body: cached features -> linear head -> (optionally) full fine-tuning -> model file.

1. The body gets its ImageNet weights (bundled, downloaded once, or --weights FILE); where they came
   from (name, source, SHA-256) goes into the model file.
2. Features of every training image (orig + flip views; crop views too when a --time-budget has room)
   and of val/test (orig + flip = the flip TTA) are read from the feature cache or computed once.
3. A linear head is fitted on them (seconds) and becomes the model's head.
4. `--finetune full` (or auto's choice): every layer trains further (sortnet.transfer.finetune);
   `--finetune partial[:N]` (or auto's choice on a CPU with a budget): 2-3 happen on cached activations
   of the frozen front instead, and the last N blocks + head train on them (sortnet.transfer.partial_fit).
Held-out metrics come from the same features (a linear head's averaged logits over views are exactly
the model file's TTA), so nothing is computed twice.

Usage (sortnet.fit calls it for recipes with pretrained=True):
    result = fit_pretrained(bundle, cfg, recipe, device, dtype, run_dir, callbacks)
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from sortnet.models.pretrained import load_pretrained
from sortnet.models.registry import create_model, input_normalization
from sortnet.runfolder.record import write_run_file
from sortnet.runs.announce import data_lines
from sortnet.runs.assemble import class_weights, make_trainer
from sortnet.transfer.extract import FeatureExtractor, train_views
from sortnet.transfer.featcache import backbone_key, cached_features, features_dir
from sortnet.transfer.finetune import LAYER_LR, choose_finetune, finetune_recipe
from sortnet.transfer.head import train_head

EXTRACT_SHARE = 0.4  # with --time-budget: crop views are added while extraction stays within this share
MAX_VIEWS = 4  # orig, flip, crop1, crop2
RECORD_MIN_IMAGES = 64  # extractions of fewer image views are too short to time the machine by


class _Log:
    def __init__(self, on: bool) -> None:
        self.on = on

    def __call__(self, msg: str) -> None:
        if self.on:
            print(msg, flush=True)


def _model_prep(bundle, recipe):
    """The bundle's preprocessing with the normalization the pretrained model applies (part of the cache key)."""
    p = bundle.preprocessing
    mean, std = input_normalization(recipe.model, p.mean, p.std, pretrained=True)
    return dataclasses.replace(p, mean=mean, std=std)


class _Features:
    """Cached features of the bundle's splits for one backbone."""

    def __init__(self, model, bundle, recipe, cfg, origin, device, dtype, log: _Log, cache: bool = True) -> None:
        self.bundle, self.cfg, self.log, self.cache = bundle, cfg, log, cache
        self.prep = _model_prep(bundle, recipe)
        self.backbone = {"arch": recipe.model, "weights_sha256": origin.sha256}
        self.arch = recipe.model
        onnx = features_dir() / f"{backbone_key(self.backbone, self.prep)}.onnx" if cache else None
        self.extractor = FeatureExtractor(model, device, dtype, onnx_cache=onnx)
        self.eval_views = ("orig", "flip") if recipe.tta_flip else ("orig",)

    def get(self, split: str, views) -> np.ndarray:
        data = getattr(self.bundle, split)
        t0 = time.perf_counter()
        if not self.cache:  # a fine-tuned body: its features are not worth keeping
            feats = self.extractor.extract(data.images, views, progress=self.cfg.progress, seed=self.cfg.seed,
                                           desc=f"{split} features")
            self.log(f"  {split} features of the fine-tuned body: {len(data)} images x {len(views)} view(s), "
                     f"{self.extractor.images_per_second:.1f} img/s")
            return feats
        feats, hits = cached_features(data, self.extractor, self.backbone, self.prep, views, seed=self.cfg.seed,
                                      progress=self.cfg.progress, desc=f"{split} features")
        done = len(views) - len(hits)
        rate = f", {self.extractor.images_per_second:.1f} img/s, {self.extractor.backend}" if done else ""
        if done and len(data) * done >= RECORD_MIN_IMAGES:  # the machine's speed, for choosing a backbone later
            from sortnet.transfer.speed import record_extraction

            record_extraction(self.arch, self.prep.img_size, self.extractor.images_per_second)
        cached = f"{len(hits)} view(s) from the cache" if hits else "computed"
        self.log(f"  {split} features: {len(data)} images x {len(views)} view(s) ({', '.join(views)}): {cached} "
                 f"in {time.perf_counter() - t0:.1f}s{rate}")
        return feats


def _train_views(recipe, cfg, n: int, feats: _Features, budget_left) -> tuple[str, ...]:
    """orig+flip (orig alone without flips); crops added while a --time-budget's extraction share allows."""
    if not recipe.flip:
        return ("orig",)
    views = train_views(2)
    left = budget_left()
    if left is None or feats.extractor.images_per_second <= 0:
        return views
    per_view = n / feats.extractor.images_per_second
    extra = int((EXTRACT_SHARE * cfg.time_budget - 2 * per_view) // per_view)
    return train_views(min(MAX_VIEWS, 2 + max(0, extra)))


@torch.no_grad()
def _head_logits(feats: np.ndarray, head) -> torch.Tensor:
    """Logits of the averaged views (= the TTA average of a linear head's logits)."""
    return torch.from_numpy(feats.mean(0)) @ head.weight.T.cpu() + head.bias.cpu()


def _fit_head(model, feats: _Features, bundle, cfg, recipe, budget_left, log: _Log):
    """Stage 1: the linear head on cached features becomes model.head; (recipe, head info)."""
    n, k = len(bundle.train), len(bundle.classes)
    train = feats.get("train", train_views(2) if recipe.flip else ("orig",))
    views = _train_views(recipe, cfg, n, feats, budget_left)
    if len(views) > train.shape[0]:
        train = feats.get("train", views)  # the cached views are read again, only the crops are new
    head = train_head(train, bundle.train.labels, k, views=views,
                      class_weights=class_weights(cfg, bundle.train.labels, k), seed=cfg.seed)
    with torch.no_grad():
        model.head.weight.copy_(head.weight)
        model.head.bias.copy_(head.bias)
    h = head.info
    log(f"  head: logistic regression on {train.shape[0] * n} feature vectors, L2 {h['lambda']:g} by "
        f"3-fold CV (held-out accuracy {h['cv_accuracy']:.3f}), {h['seconds']:.1f}s")
    return dataclasses.replace(recipe, finetune="head", views=len(views), epochs=0), h


def fit_pretrained(bundle, cfg, recipe, device, dtype, run_dir: Path | None, callbacks=None, state=None,
                   reason: str = "", deadline=None, after_seconds: float = 0.0) -> dict:
    """Train recipe.model from its pretrained weights on bundle; the finish_model result dict.

    deadline: the time budget's training/clock.Deadline (None: no budget), handed down by runs/fit.py;
    after_seconds: what the command does after the model file (the report), kept free."""

    t0 = time.perf_counter()  # for metrics' train_seconds only: the budget is the deadline's
    log = _Log(cfg.progress)

    def budget_left():
        return None if deadline is None else deadline.remaining()

    prep = _model_prep(bundle, recipe)
    model = create_model(recipe.model, prep.channels, len(bundle.classes), prep.img_size, prep.mean, prep.std)
    origin = load_pretrained(model, recipe.model, bundle.preprocessing.img_size, cfg.weights, cfg.progress)
    if state is not None:
        mode, why = "full", "resumed"
    else:
        mode, why = choose_finetune(cfg, model, bundle, device, budget_left())
    _announce(log, bundle, recipe, origin, reason, mode, why, device)
    partial = _partial(model, bundle, cfg, recipe, origin, device, dtype, log, budget_left, after_seconds) \
        if mode == "partial" else None
    if partial is not None:  # head + last blocks on cached activations: val/test logits come with it
        recipe = dataclasses.replace(recipe, **partial["recipe_updates"])
        return _finish(model, bundle, cfg, recipe, run_dir, partial["metrics"], partial["logits"], origin, device,
                       dtype, t0, deadline, partial.get("features"))
    feats = _Features(model, bundle, recipe, cfg, origin, device, dtype, log)
    metrics: dict = {"history": [], "epochs": 0, "best": {}}
    if state is None:
        recipe, metrics["head"] = _fit_head(model, feats, bundle, cfg, recipe, budget_left, log)
    if mode == "full":
        recipe, trainer = _full_finetune(model, bundle, cfg, recipe, device, dtype, run_dir, callbacks, state,
                                         deadline, after_seconds)
        metrics.update(history=trainer.history, epochs=trainer.epoch, best=trainer.best)
        model = trainer.model
        feats = _Features(model, bundle, recipe, cfg, origin, device, dtype, log, cache=False)
    held = {s: feats.get(s, feats.eval_views) for s in ("val", "test")
            if getattr(bundle, s) is not None and len(getattr(bundle, s))}
    logits = {s: _head_logits(f, model.head) for s, f in held.items()}
    # the unknown scorer's features, averaged over the TTA views like the logits; the frozen body's training
    # features are cached (a fine-tuned body's are computed for the scorer's sample only, in finish_model)
    features = {"val": held["val"].mean(0)} if "val" in held else {}
    if mode != "full":
        features["train"] = feats.get("train", feats.eval_views).mean(0)
    return _finish(model, bundle, cfg, recipe, run_dir, metrics, logits, origin, device, dtype, t0, deadline,
                   features)


def _partial(model, bundle, cfg, recipe, origin, device, dtype, log, budget_left, after_seconds) -> dict | None:
    """transfer/partial_fit.fit_partial with this run's context; None: it chose the head path."""
    from sortnet.training.budget import safety_margin
    from sortnet.runs.planner import save_seconds
    from sortnet.transfer.finetune import partial_blocks
    from sortnet.transfer.partial_fit import PartialContext, fit_partial

    reserve = (save_seconds(model) + after_seconds + safety_margin(cfg.time_budget)) if cfg.time_budget else 0.0
    ctx = PartialContext(prep=_model_prep(bundle, recipe), backbone={"arch": recipe.model, "weights_sha256": origin.sha256},
                         device=device, dtype=dtype, class_weights=class_weights(cfg, bundle.train.labels,
                                                                                  len(bundle.classes)),
                         eval_views=("orig", "flip") if recipe.tta_flip else ("orig",), flip=recipe.flip, log=log,
                         reserve=reserve)
    return fit_partial(model, bundle, cfg, ctx, partial_blocks(cfg), budget_left)


def _finish(model, bundle, cfg, recipe, run_dir, metrics, logits, origin, device, dtype, t0, deadline,
            features: dict | None = None) -> dict:
    """features: the unknown scorer's {"train", "val"} penultimate features where cached (finish_model computes
    the rest)."""
    from sortnet.runs.finish import finish_model

    metrics["train_seconds"] = round(time.perf_counter() - t0, 2)
    if run_dir is not None:
        write_run_file(run_dir, bundle.data, cfg.to_dict(), recipe.to_dict())
    from sortnet.tta import TTA

    tta = TTA(flip=recipe.tta_flip, shift=0)
    budget = (lambda: {"seconds": deadline.seconds, "used_seconds": round(deadline.elapsed(), 2)}) \
        if deadline is not None else None  # the model file's moment in the whole command's budget
    return finish_model(model, recipe, tta, bundle, cfg, run_dir, metrics, device=device, dtype=dtype,
                        logits=logits, weights_source=origin.to_dict(), budget=budget, features=features)


def _full_finetune(model, bundle, cfg, recipe, device, dtype, run_dir, callbacks, state, deadline, after_seconds):
    """Stage 2: every layer, discriminative lrs, frozen BN statistics; planned and kept (training/budget.py) to end
    by the deadline after what follows training: held-out features of the fine-tuned body, the unknown scorer's
    training sample, the model file and after_seconds (the report)."""
    import math

    from sortnet.training.budget import TimeBudget, plan_steps
    from sortnet.training.trainer import resolve_balance

    if state is None:
        recipe = finetune_recipe(recipe, cfg, len(bundle.train))
    balance, _ = resolve_balance(cfg.balance, list(bundle.train.class_counts().values()))

    def make(r):
        return make_trainer(model, bundle, cfg, r, device, dtype, run_dir, callbacks, balance)

    trainer = make(recipe)
    if state is not None:
        trainer.load_state_dict(state)
    if deadline is not None:
        eval_image = trainer.measure_eval_seconds(repeats=1)
        finish = _finetune_finish_seconds(eval_image, trainer.model, bundle, recipe, cfg, after_seconds)
        n_val = len(bundle.val) if bundle.val else 0
        if state is None:
            steps, step = plan_steps(trainer, max(1.0, deadline.remaining() - finish), n_val)
            recipe = dataclasses.replace(recipe, epochs=math.ceil(steps / trainer.steps_per_epoch), total_steps=steps)
            trainer = make(recipe)
        else:
            step = trainer.measure_step_seconds(steps=3, warmup_steps=1)
        trainer.callbacks.insert(1, TimeBudget(deadline.work_seconds, start=deadline.start, step_seconds=step,
                                               epoch_end_seconds=eval_image * n_val, finish_seconds=finish))
    if cfg.progress:
        print(f"  fine-tuning every layer: {recipe.epochs} epoch(s), AdamW lr {recipe.lr:g} (body x{', x'.join(f'{m:g}' for m in LAYER_LR)}), "
              f"BatchNorm statistics frozen", flush=True)
    if run_dir is not None:
        write_run_file(run_dir, bundle.data, cfg.to_dict(), recipe.to_dict())
    trainer.fit()
    return recipe, trainer


def _finetune_finish_seconds(eval_image: float, model, bundle, recipe, cfg, after_seconds: float) -> float:
    """Seconds after the last fine-tuning step: val/test features of the fine-tuned body with the TTA views,
    the unknown scorer's training sample, the model file, and after_seconds (the report)."""
    from sortnet.runs.planner import save_seconds
    from sortnet.unknown.fit import unknown_fit_images

    views = 2 if recipe.tta_flip else 1
    n_val = len(bundle.val) if bundle.val is not None else 0
    n_test = len(bundle.test) if bundle.test is not None else 0
    sample = unknown_fit_images(cfg, len(bundle.train), n_val) - n_val  # val features come with the held-out ones
    images = (n_val + n_test + max(0, sample)) * views
    return eval_image * images + save_seconds(model) + after_seconds


def _announce(log: _Log, bundle, recipe, origin, reason: str, mode: str, why: str, device) -> None:
    for line in data_lines(bundle):
        log(line)
    log(f"model: {recipe.model} with ImageNet weights: {origin.name} [{origin.source}]")
    if reason:
        log(f"  why: {reason}")
    log(f"  finetune: {mode} ({why})  device {device}")
