"""Partial fine-tuning: the last blocks of a pretrained body + the linear head train on cached activations.

The frozen front ran once per image and view (transfer/actcache.py); here only the tail (its last MBConv
blocks, the 1x1 head conv, pooling) and the head see gradients, so an epoch costs a fraction of a full
forward pass per image instead of a forward + backward through everything. Recipe (fastai / Keras fine-
tuning guides, scaled to a tail): AdamW, the head at HEAD_LR, the tail at TAIL_LR (pretrained layers move
least), a warm-up then cosine decay over the *time* given (not a step count: a shared machine's speed
varies, and the budget is in seconds), BatchNorm statistics frozen (eval mode; their scale/shift train:
batches of 32 would overwrite ImageNet's statistics), dropout before the head, label smoothing. Each
epoch shows every image once, in one of its cached views drawn at random (the augmentation). The
validation split is scored after each epoch (its first view: half the cost of the TTA); the best epoch
is kept, the head-only start (epoch 0) included, so partial fine-tuning never ends below it
on validation.

Usage:
    costs = measure_tail(tail, head, acts.shape[2:], batch=32)
    result = TailTrainer(tail, head, train_acts, labels, val=(val_acts, val_labels)).fit(seconds=120)
    logits = tail_logits(tail, head, test_acts)          # [N, K], views averaged
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

TAIL_LR, HEAD_LR = 3e-4, 1e-3
WEIGHT_DECAY = 1e-2
WARMUP_SHARE = 0.06  # of the training time
LABEL_SMOOTHING = 0.1
DROPOUT = 0.2
BATCH = 32
EVAL_BATCH = 256


def _frozen_bn(module: nn.Module) -> None:
    """Train mode except BatchNorm (statistics frozen)."""
    module.train()
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


@torch.no_grad()
def tail_forward(tail: nn.Module, acts: torch.Tensor, batch: int = EVAL_BATCH, session=None) -> torch.Tensor:
    """float32 outputs of the (frozen, eval-mode) tail over float16 activations [N, C, H, W], in batches;
    session: an onnxruntime session of the same tail (frozen_session), ~2x eager PyTorch's speed here."""
    tail.eval()
    out = []
    for i in range(0, len(acts), batch):
        x = acts[i:i + batch].float()
        if session is not None:
            out.append(torch.from_numpy(session.run(None, {"x": x.numpy()})[0]))
        else:
            out.append(tail(x.contiguous(memory_format=torch.channels_last)))
    return torch.cat(out) if out else torch.zeros(0)


def frozen_session(tail: nn.Module, example: torch.Tensor, cache_file: Path | None = None):
    """An onnxruntime session of a frozen tail (its weights as they are now), None without onnxruntime."""
    from sortnet.transfer.extract import _onnx_session

    return _onnx_session(tail.eval(), example[:2].float(), cache_file)


@torch.no_grad()
def tail_logits(tail: nn.Module, head: nn.Linear, acts: torch.Tensor) -> torch.Tensor:
    """[N, K] logits averaged over the views of acts [V, N, C, H, W] (= the model file's flip TTA)."""
    return torch.stack([head(tail_forward(tail, a)) for a in acts]).mean(0)


@dataclass
class TailCosts:
    step_image: float  # s per training image (forward + backward + update)
    eval_image: float  # s per image view, forward only
    threads: int  # the intra-op thread count that was faster (a loaded machine can make 2 threads 10x slower)


@contextlib.contextmanager
def threads(count: int):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _step_seconds(tail, head, x, y, opt, steps: int) -> float:
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        _frozen_bn(tail)
        loss = F.cross_entropy(head(tail(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure_tail(tail: nn.Module, head: nn.Linear, shape: tuple[int, ...], batch: int = BATCH,
                 steps: int = 2) -> TailCosts:
    """Timed on this machine: `steps` training steps (after one warm-up) with 1 thread and with every core
    (the faster count is kept), then one evaluation batch."""
    x = torch.randn(batch, *shape).contiguous(memory_format=torch.channels_last)
    tail.to(memory_format=torch.channels_last)
    y = torch.zeros(batch, dtype=torch.long)
    params = [p for p in list(tail.parameters()) + list(head.parameters()) if p.requires_grad]
    saved = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=0.0, weight_decay=0.0)  # lr 0, weights restored: nothing changes
    timed = {}
    for count in sorted({1, torch.get_num_threads()}, reverse=True):
        with threads(count):
            timed[count] = _step_seconds(tail, head, x, y, opt, steps)
    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)
    best = min(timed, key=timed.get)
    with threads(best):
        t0 = time.perf_counter()
        tail_forward(tail, x.half())
        eval_image = (time.perf_counter() - t0) / batch
    return TailCosts(timed[best] / batch, eval_image, best)


@dataclass
class TailResult:
    history: list[dict] = field(default_factory=list)  # per epoch: loss, val accuracy/loss, seconds
    best_epoch: int = 0  # 0: the head-only start was best on validation
    epochs: int = 0
    seconds: float = 0.0


class TailTrainer:
    """Trains tail + head in place on activations [V, N, C, H, W] (float16) with labels [N]."""

    def __init__(self, tail: nn.Module, head: nn.Linear, acts: torch.Tensor, labels: np.ndarray, *,
                 val: tuple[torch.Tensor, np.ndarray] | None = None, class_weights: torch.Tensor | None = None,
                 seed: int = 0, batch: int = BATCH, log=None, lrs: tuple[float, float] = (TAIL_LR, HEAD_LR),
                 num_threads: int | None = None) -> None:
        self.tail, self.head, self.acts = tail.to(memory_format=torch.channels_last), head, acts
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.val, self.class_weights, self.batch, self.log = val, class_weights, batch, log
        self.gen = torch.Generator().manual_seed(seed)
        self.num_threads = num_threads or torch.get_num_threads()
        self.opt = torch.optim.AdamW([{"params": list(tail.parameters()), "lr": lrs[0]},
                                      {"params": list(head.parameters()), "lr": lrs[1]}], weight_decay=WEIGHT_DECAY)
        self.peak = [g["lr"] for g in self.opt.param_groups]

    def _set_lr(self, frac: float) -> None:
        """Linear warm-up over WARMUP_SHARE of the run, then cosine to 0 (frac: share of the run done)."""
        scale = frac / WARMUP_SHARE if frac < WARMUP_SHARE else \
            0.5 * (1 + math.cos(math.pi * min(1.0, (frac - WARMUP_SHARE) / (1 - WARMUP_SHARE))))
        for g, peak in zip(self.opt.param_groups, self.peak):
            g["lr"] = peak * max(scale, 0.0)

    def _score(self) -> dict:
        if self.val is None or not len(self.val[1]):
            return {}
        logits = tail_logits(self.tail, self.head, self.val[0][:1])  # view 0 per epoch: half the cost
        y = torch.as_tensor(np.asarray(self.val[1]), dtype=torch.long)
        return {"val_accuracy": float((logits.argmax(1) == y).float().mean()),
                "val_loss": float(F.cross_entropy(logits, y))}

    @staticmethod
    def _better(a: dict, b: dict) -> bool:
        return (a["val_accuracy"], -a["val_loss"]) > (b["val_accuracy"], -b["val_loss"])

    def fit(self, seconds: float | None = None, epochs: int | None = None) -> TailResult:
        """Train for `seconds` (the schedule spans them; the epoch in progress stops at the end) or `epochs`;
        the best validated state (epoch 0 = the start) is loaded back at the end."""
        with threads(self.num_threads):
            return self._fit(seconds, epochs)

    def _fit(self, seconds: float | None, epochs: int | None) -> TailResult:
        if seconds is None and not epochs:
            raise ValueError("give seconds or epochs")
        t0, n, views = time.perf_counter(), len(self.labels), self.acts.shape[0]
        steps_per_epoch = max(1, math.ceil(n / self.batch))
        result, best = TailResult(), self._score()
        best_state = (copy.deepcopy(self.tail.state_dict()), copy.deepcopy(self.head.state_dict()))
        step, done = 0, False
        while not done:
            _frozen_bn(self.tail)
            order = torch.randperm(n, generator=self.gen)
            which = torch.randint(0, views, (n,), generator=self.gen)
            total = 0.0
            for b in range(steps_per_epoch):
                elapsed = time.perf_counter() - t0
                frac = elapsed / seconds if seconds else step / (epochs * steps_per_epoch)
                if frac >= 1.0:
                    done = True
                    break
                self._set_lr(frac)
                rows = order[b * self.batch:(b + 1) * self.batch]
                x = self.acts[which[rows], rows].float().contiguous(memory_format=torch.channels_last)
                feats = F.dropout(self.tail(x), DROPOUT, training=True)
                loss = F.cross_entropy(self.head(feats), self.labels[rows], weight=self.class_weights,
                                       label_smoothing=LABEL_SMOOTHING)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                total, step = total + float(loss.detach()) * len(rows), step + 1
            if done and b == 0:
                break  # the time ran out between epochs
            result.epochs += 1
            score = self._score()
            result.history.append({"epoch": result.epochs, "loss": total / max(1, n), **score,
                                   "seconds": round(time.perf_counter() - t0, 2)})
            if self.log:
                self.log(f"    epoch {result.epochs}: loss {total / max(1, n):.3f}"
                         + (f", val accuracy {score['val_accuracy']:.4f}" if score else ""))
            if score and self._better(score, best):
                best, result.best_epoch = score, result.epochs
                best_state = (copy.deepcopy(self.tail.state_dict()), copy.deepcopy(self.head.state_dict()))
            if epochs and result.epochs >= epochs:
                done = True
        if best:  # validated: the best epoch (possibly the start); else the last state
            self.tail.load_state_dict(best_state[0])
            self.head.load_state_dict(best_state[1])
        else:
            result.best_epoch = result.epochs
        self.tail.eval()
        result.seconds = time.perf_counter() - t0
        return result
