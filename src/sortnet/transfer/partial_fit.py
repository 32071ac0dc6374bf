"""Partial fine-tuning of a pretrained run: activations cached at a split point, the head fitted on them,
then the last blocks + head trained in what is left of the budget (or the head kept when nothing fits).

1. Split point: `--finetune partial:N` cuts before the last N blocks; the planner (`partial` or auto)
   cuts before the blocks of the last resolution stage (EfficientNet-Lite0: 4 of 16, Lite1/2: 5 of 21):
   their input is the smallest map of the network (7x7x192 at 224 px: 18 KB per image and view in
   float16, less than the 1x1 head conv's input) and the frozen front is ~70% of the compute.
   The activations of every split and view must fit MEMORY_SHARE of the available RAM: estimated
   (and printed) before anything runs; too much -> fewer crop views, then (auto) the head path, or
   (explicit N) an error naming the bytes and a smaller N.
2. The frozen front runs once per image and view (onnxruntime on CPUs), cached (transfer/actcache.py);
   crop views are added while their extraction (with val/test's still to come) stays within EXTRACT_SHARE
   of what is left of the budget.
3. The frozen tail turns the activations into features (no second extraction); the linear head
   (transfer/head.py) is fitted on them and starts the fine-tuning.
4. Planner: the tail's training step and evaluation are timed on this machine; the most blocks whose
   MIN_EPOCHS epochs fit what is left (after the finish reserve) are trained, for the whole remaining
   time (the schedule spans the time, so the budget is used, not stopped short); blocks of the cached
   tail that stay frozen are run once more over the activations. Nothing fits -> the head alone.

Usage (runs/pretrained.py):
    out = fit_partial(model, bundle, cfg, ctx, seconds_left=lambda: 95.0)
    # None -> take the head path; else {"recipe_updates", "metrics", "logits"}
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from sortnet.errors import SortnetError
from sortnet.transfer.actcache import (FrontGraph, MEMORY_SHARE, activation_bytes, activation_shape, activations_dir,
                                       available_memory, cached_activations, front_graph_key)
from sortnet.transfer.extract import FeatureExtractor, train_views
from sortnet.transfer.head import train_head
from sortnet.transfer.partial import (TailTrainer, frozen_session, measure_tail, tail_forward,
                                      threads)

MIN_EPOCHS = 4  # fewer passes over the tail rarely beat the head they start from
EPOCH_IMAGES = 20_000  # without a budget: epochs so that ~this many images are seen, within [3, 15]
EXTRACT_SHARE, MAX_VIEWS = 0.4, 4  # as runs/pretrained.py: crops while extraction stays within this budget share
RECORD_MIN_IMAGES = 64  # extractions of fewer image views are too short to time the machine by


class PartialFinetuneError(SortnetError):
    """Partial fine-tuning cannot run as asked (activations too big for memory, a backbone without blocks)."""


@dataclass
class PartialContext:
    """What fit_partial needs of the run (kept here so runs/pretrained.py need not be imported)."""
    prep: object  # Preprocessing with the model's normalization (part of every cache key)
    backbone: dict  # {"arch", "weights_sha256"}
    device: torch.device
    dtype: torch.dtype | None
    class_weights: torch.Tensor | None
    eval_views: tuple[str, ...]
    flip: bool
    log: Callable[[str], None]
    reserve: float = 0.0  # seconds kept for the end of the run (model file, report, safety margin)


def epochs_without_budget(cfg, n_train: int) -> int:
    return cfg.epochs or int(min(15, max(3, math.ceil(EPOCH_IMAGES / max(1, n_train)))))


def _split_point(body, blocks: int | None) -> int:
    return body.last_stage_blocks() if blocks is None else max(0, min(int(blocks), len(body.blocks)))


def _memory_views(shape, bundle, views_wanted: int, eval_views: int) -> tuple[int, int, int]:
    """(train views that fit, their bytes, the limit): the activations of train, val and test together."""
    n_eval = sum(len(s) for s in (bundle.val, bundle.test) if s is not None)
    limit = int(MEMORY_SHARE * available_memory())
    for v in range(views_wanted, 0, -1):
        need = activation_bytes(shape, len(bundle.train), v) + activation_bytes(shape, n_eval, eval_views)
        if need <= limit:
            return v, need, limit
    return 0, activation_bytes(shape, len(bundle.train), 1) + activation_bytes(shape, n_eval, eval_views), limit


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


class _Acts:
    """Cached activations of the bundle's splits at one split point."""

    def __init__(self, model, front, split: int, shape, cfg, ctx: PartialContext) -> None:
        self.cfg, self.ctx, self.split, self.shape = cfg, ctx, split, shape
        onnx = activations_dir() / f"{front_graph_key(ctx.backbone, ctx.prep, split)}.onnx"
        self.extractor = FeatureExtractor(FrontGraph(model.normalize, front), ctx.device, ctx.dtype, onnx_cache=onnx)

    def get(self, data, views, name: str) -> torch.Tensor:
        t0 = time.perf_counter()
        acts, hits = cached_activations(data, self.extractor, self.ctx.backbone, self.ctx.prep, self.split,
                                        self.shape, views, seed=self.cfg.seed, progress=self.cfg.progress,
                                        desc=f"{name} activations")
        done = len(views) - len(hits)
        rate = f", {self.extractor.images_per_second:.1f} img/s, {self.extractor.backend}" if done else ""
        if done and done * len(data) >= RECORD_MIN_IMAGES:  # the machine's speed, for choosing a backbone later
            from sortnet.transfer.speed import record_extraction

            record_extraction(self.ctx.backbone["arch"], self.ctx.prep.img_size, self.extractor.images_per_second,
                              split=self.split)
        self.ctx.log(f"  {name} activations: {len(data)} images x {len(views)} view(s) ({', '.join(views)}): "
                     f"{f'{len(hits)} view(s) from the cache' if hits else 'computed'} in "
                     f"{time.perf_counter() - t0:.1f}s{rate}")
        return acts


def _train_views(acts: _Acts, n: int, n_eval: int, max_views: int, seconds_left) -> tuple[str, ...]:
    """orig+flip, then crop views while their extraction and the val/test extraction still to come take at
    most EXTRACT_SHARE of what is left of the budget now (the rest trains the blocks)."""
    if not acts.ctx.flip or max_views < 2:
        return ("orig",)
    views = train_views(2)
    left = seconds_left()
    if left is None or acts.extractor.images_per_second <= 0:
        return views
    rate = acts.extractor.images_per_second
    spare = EXTRACT_SHARE * left - n_eval * len(acts.ctx.eval_views) / rate
    extra = int(spare // (n / rate))
    return train_views(min(MAX_VIEWS, max_views, 2 + max(0, extra)))


def _frozen_run(module, acts: torch.Tensor, ctx: PartialContext, split: int, what: str) -> torch.Tensor:
    """float32 [V, N, ...] outputs of a frozen part of the tail over every view (onnxruntime where it is)."""
    onnx = activations_dir() / f"{front_graph_key(ctx.backbone, ctx.prep, split)}-{what}.onnx"
    session = frozen_session(module, acts[0], onnx) if ctx.device.type == "cpu" and acts.shape[1] >= 2 else None
    return torch.stack([tail_forward(module, a, session=session) for a in acts])


def _fit_head(model, tail, train_acts, labels, views, ctx: PartialContext, k: int, seed: int, split: int) -> dict:
    """The linear head on the frozen tail's features of every cached view; copied into model.head."""
    t0 = time.perf_counter()
    feats = _frozen_run(tail, train_acts, ctx, split, "tail").numpy()
    head = train_head(feats, labels, k, views=views, class_weights=ctx.class_weights, seed=seed)
    with torch.no_grad():
        model.head.weight.copy_(head.weight)
        model.head.bias.copy_(head.bias)
    h = head.info
    ctx.log(f"  head: logistic regression on {feats.shape[0] * feats.shape[1]} feature vectors (the frozen tail's, "
            f"{time.perf_counter() - t0 - h['seconds']:.1f}s), L2 {h['lambda']:g} by 3-fold CV (held-out accuracy "
            f"{h['cv_accuracy']:.3f}), {h['seconds']:.1f}s")
    return h


def _plan(tail, head, shape, n_train: int, n_val_views: int, split: int, left_fn: Callable[[], float | None],
          explicit: bool, log) -> tuple[int, int | None, str]:
    """(blocks to train, intra-op threads, why): the most blocks of the cached tail whose MIN_EPOCHS epochs fit
    what left_fn() says is left (seconds, after the reserve), asked again after every measurement: measuring
    a tail takes seconds too, and the budget it spends is not there for training."""
    if left_fn() is None:
        return split, None, "no --time-budget: every cached block trains"
    for blocks in range(split, 0, -1):
        sub = tail[split - blocks:]
        frozen = tail[:split - blocks]
        with torch.no_grad():
            in_shape = tuple(frozen.eval()(torch.zeros(1, *shape)).shape[1:])
        costs = measure_tail(sub, head, in_shape)
        epoch = n_train * costs.step_image + n_val_views * costs.eval_image
        log(f"  partial: {blocks} block(s) + head conv: {costs.step_image * 1000:.1f} ms/image to train, "
            f"~{epoch:.1f}s per epoch here ({costs.threads} thread(s) faster)")
        left = left_fn()
        if left >= MIN_EPOCHS * epoch or (explicit and blocks == split):
            return blocks, costs.threads, (f"{left:.0f}s left after the head: {blocks} block(s) x ~{left / epoch:.1f} epochs "
                            f"(>= {MIN_EPOCHS} wanted), the schedule spans all of it")
        if left <= MIN_EPOCHS * epoch * (blocks - 1) / blocks:  # fewer blocks, cheaper per block: none fits
            break
    return 0, 1, f"{left_fn():.0f}s left after the head: not even 1 block fits {MIN_EPOCHS} epochs; the head alone"


def _memory_check(shape, bundle, ctx: PartialContext, split: int, explicit: bool) -> int:
    """Train views that fit in memory (printed with the estimate); 0 -> the head path (auto only)."""
    wanted = MAX_VIEWS if ctx.flip else 1
    views, need, limit = _memory_views(shape, bundle, wanted, len(ctx.eval_views))
    ctx.log(f"  partial: activations before the last {split} block(s): {'x'.join(map(str, shape))} float16 = "
            f"{activation_bytes(shape, 1, 1) / 1024:.0f} KB per image and view; {views or 1} train view(s) + "
            f"{len(ctx.eval_views)} eval view(s): {_gib(need)} (limit {_gib(limit)}, {MEMORY_SHARE:.0%} of the "
            f"available memory)")
    if views == 0 and explicit:
        raise PartialFinetuneError(f"--finetune partial:{split}: the activations need {_gib(need)}, more than "
                                 f"{_gib(limit)}; train fewer blocks (a smaller N: later blocks have smaller maps), "
                                 "fewer images, or --finetune head")
    return views


def fit_partial(model, bundle, cfg, ctx: PartialContext, blocks: int | None,
                seconds_left: Callable[[], float | None]) -> dict | None:
    """Head + partial fine-tuning on cached activations, model trained in place; None -> the head path."""
    body, explicit = model.body, blocks is not None
    if not callable(getattr(body, "split", None)):
        raise PartialFinetuneError(f"--finetune partial needs a backbone that can be split into blocks "
                                 f"(efficientnet-lite0/1/2); {type(body).__name__} cannot: use head or full")
    split = _split_point(body, blocks)
    front, tail = body.split(split)
    shape = activation_shape(front, ctx.prep.channels, ctx.prep.img_size)
    max_views = _memory_check(shape, bundle, ctx, split, explicit)
    if max_views == 0:
        ctx.log("  partial: the activations do not fit in memory; the head path instead")
        return None
    train, evals, views = _extract(_Acts(model, front, split, shape, cfg, ctx), bundle, ctx, max_views, seconds_left)
    labels = np.asarray(bundle.train.labels)
    head_info = _fit_head(model, tail, train, labels, views, ctx, len(bundle.classes), cfg.seed, split)
    def left_fn():
        left = seconds_left()
        return None if left is None else left - ctx.reserve

    n_val_views = len(bundle.val) * len(ctx.eval_views) if "val" in evals else 0
    trained, num_threads, why = _plan(tail, model.head, shape, len(labels), n_val_views, split, left_fn, explicit,
                                      ctx.log)
    ctx.log(f"  partial fine-tuning: {f'{trained} of {len(body.blocks)} blocks' if trained else 'none'} ({why})")
    out = {"recipe_updates": {"finetune": "head", "views": len(views), "epochs": 0},
           "metrics": {"head": head_info, "history": [], "epochs": 0, "best": {}}}
    if trained:
        out = _train(model, tail, split, trained, train, evals, labels, bundle, cfg, ctx, num_threads, seconds_left,
                     out)
    else:  # the head alone: the frozen tail's features (onnxruntime), views averaged
        with torch.no_grad():
            views_n = len(ctx.eval_views)
            feats = {s: _frozen_run(tail, e, ctx, split, "tail").mean(0) for s, e in evals.items()}
            feats["train"] = _frozen_run(tail, train[:views_n], ctx, split, "tail").mean(0)
            out["logits"] = {s: model.head(f) for s, f in feats.items() if s != "train"}
            out["features"] = _scorer_features(feats)
    model.to(memory_format=torch.contiguous_format).eval()  # training ran channels_last; the model file wants plain
    return out


def _extract(acts: _Acts, bundle, ctx: PartialContext, max_views: int, seconds_left):
    """(train activations [V, N, ...], {"val"/"test": [V', N', ...]}, train views): cached or computed now."""
    n = len(bundle.train)
    train = acts.get(bundle.train, ("orig", "flip")[:min(2, max_views)] if ctx.flip else ("orig",), "train")
    n_eval = sum(len(getattr(bundle, s)) for s in ("val", "test") if getattr(bundle, s) is not None)
    views = _train_views(acts, n, n_eval, max_views, seconds_left)
    if len(views) > train.shape[0]:
        train = acts.get(bundle.train, views, "train")  # the first views are cache hits
    evals = {s: acts.get(getattr(bundle, s), ctx.eval_views, s) for s in ("val", "test")
             if getattr(bundle, s) is not None and len(getattr(bundle, s))}
    return train, evals, views


def _train(model, tail, split, trained, train, evals, labels, bundle, cfg, ctx, num_threads, seconds_left,
           out: dict) -> dict:
    """The last `trained` blocks + head train (in place) for the rest of the budget; out gets logits and metrics."""
    frozen, sub = tail[:split - trained], tail[split - trained:]
    if split - trained:  # cached blocks that stay frozen: run once over every activation
        what = f"frozen{split - trained}"
        train = _frozen_run(frozen, train, ctx, split, what).half()
        evals = {s: _frozen_run(frozen, e, ctx, split, what).half() for s, e in evals.items()}
    threads_used = num_threads or torch.get_num_threads()
    left = seconds_left()
    budget = None if left is None else max(1.0, left - ctx.reserve - _final_eval(evals, sub, threads_used))
    trainer = TailTrainer(sub, model.head, train, labels, val=(evals["val"], bundle.val.labels)
                          if "val" in evals else None, class_weights=ctx.class_weights, seed=cfg.seed,
                          log=ctx.log if cfg.progress else None, num_threads=num_threads)
    result = trainer.fit(seconds=budget, epochs=None if budget else epochs_without_budget(cfg, len(labels)))
    left = seconds_left()
    head_only = result.best_epoch == 0
    ctx.log(f"  partial fine-tuning: {result.epochs} epoch(s) in {result.seconds:.1f}s, best on validation: "
            f"epoch {result.best_epoch}{' (the head alone: kept)' if head_only else ''}"
            + (f"; {left:.1f}s of the budget left" if left is not None else ""))
    out["metrics"].update(history=result.history, epochs=result.epochs, best_epoch=result.best_epoch,
                          best=result.history[result.best_epoch - 1] if result.best_epoch else {})
    out["recipe_updates"].update(finetune=f"partial:{trained}", epochs=result.epochs)  # what ran; best_epoch: kept
    with threads(threads_used), torch.no_grad():
        feats = {s: torch.stack([tail_forward(sub, a) for a in e]).mean(0) for s, e in evals.items()}
        feats["train"] = torch.stack([tail_forward(sub, a) for a in train[:len(ctx.eval_views)]]).mean(0)
        out["logits"] = {s: model.head(f) for s, f in feats.items() if s != "train"}  # = tail_logits: linear head
        out["features"] = _scorer_features(feats)
    return out


def _scorer_features(feats: dict) -> dict:
    """The unknown scorer's {"train", "val"} features (unknown/fit.py), averaged over the eval views like the
    logits: taken from the cached activations, so the end of the run passes no image through the whole net."""
    return {s: f.float().numpy() for s, f in feats.items() if s in ("train", "val")}


def _final_eval(evals: dict, sub, num_threads: int) -> float:
    """Seconds the last val + test logits take (one timed batch), plus the last epoch's validation (view 0)."""
    count = sum(e.shape[0] * e.shape[1] for e in evals.values()) + (evals["val"].shape[1] if "val" in evals else 0)
    if not count:
        return 0.0
    e = next(iter(evals.values()))[0][:32]
    with threads(num_threads):
        t0 = time.perf_counter()
        tail_forward(sub, e)
    return (time.perf_counter() - t0) / max(1, len(e)) * count
