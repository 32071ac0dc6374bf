"""The training loop: resident uint8 data, whole-batch augmentation, autocast, events for everything else.

Everything random is derived from (seed, epoch), so a run resumed from an epoch checkpoint replays the
same batches, flips, shifts and dropout masks as an uninterrupted one.

Usage:
    trainer = Trainer(model, train_set, val_set, recipe, device=dev, dtype=torch.bfloat16, seed=0,
                      callbacks=[ProgressBar()])
    history = trainer.fit()          # one dict per epoch: loss, accuracy, val_loss, val_accuracy, lr, ...
"""
from __future__ import annotations

import copy
import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sortnet.data.dataset import ImageSet
from sortnet.data.mapped import as_rows, is_on_disk
from sortnet.device import autocast_context
from sortnet.errors import SortnetError
from sortnet.training import distributed
from sortnet.training.augment import alternating_flip_mask, flip_batch, random_resized_crop, random_translate
from sortnet.training.callbacks import Callback
from sortnet.training.optim import AdamW, LrSchedule, SGDNesterov
from sortnet.training.recipe import Recipe
from sortnet.training.schedule import lr_multiplier
from sortnet.tta import TTA, predict_logits, view_count


class DivergedError(SortnetError):
    """The training loss became NaN or infinite: the run stops before anything non-finite is saved."""
def layer_groups(model: nn.Module, multipliers: list[float] | None) -> list[tuple[list[nn.Parameter], float]]:
    """(parameters, lr multiplier) groups: all at 1, or with multipliers the body's parameters cut into
    len(multipliers) consecutive chunks in definition order (early layers first) and everything else at 1."""
    params = [p for p in model.parameters() if p.requires_grad]
    body = getattr(model, "body", None)
    if not multipliers or body is None:
        return [(params, 1.0)]
    body_params = [p for p in body.parameters() if p.requires_grad]
    in_body = {id(p) for p in body_params}
    chunk = -(-len(body_params) // len(multipliers))  # ceil
    groups = [(body_params[i * chunk:(i + 1) * chunk], float(m)) for i, m in enumerate(multipliers)]
    return [g for g in groups if g[0]] + [([p for p in params if id(p) not in in_body], 1.0)]


def build_optimizer(model: nn.Module, recipe: Recipe) -> SGDNesterov | AdamW:
    """No weight decay on biases and norm parameters (1-D tensors): decaying them only hurts.
    recipe.layer_lr: discriminative learning rates (fine-tuning: early layers change least)."""
    groups = []
    for params, mult in layer_groups(model, getattr(recipe, "layer_lr", None)):
        groups += [{"params": [p for p in params if p.ndim > 1], "weight_decay": recipe.weight_decay,
                    "lr": recipe.lr * mult},
                   {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lr": recipe.lr * mult}]
    groups = [g for g in groups if g["params"]]
    if recipe.optimizer == "sgd":
        return SGDNesterov(groups, lr=recipe.lr, momentum=0.9)
    return AdamW(groups, lr=recipe.lr, betas=(0.9, 0.99))


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(seed * 1_000_003 + epoch)
    return g


BALANCE_AUTO_RATIO = 1.5  # --balance auto: class weights when the largest class has >= this x the smallest


EVAL_INPUT_BYTES = 64 << 20  # float32 input bytes per evaluation batch (512 at 32 px, ~110 at 224 px)


def eval_batch_size(images) -> int:
    """Evaluation batch: 512 for small images, fewer for large ones so activations stay within RAM."""
    per_image = 4 * int(np.prod(images.shape[1:]))
    return int(max(8, min(512, EVAL_INPUT_BYTES // max(1, per_image))))


def resolve_balance(choice: str, counts: list[int] | np.ndarray) -> tuple[str, str]:
    """(none | sampler | weights, why) for --balance, from the training class counts."""
    if choice != "auto":
        return choice, "set by --balance"
    present = [int(c) for c in counts if c > 0]
    ratio = max(present) / min(present) if present else 1.0
    if ratio >= BALANCE_AUTO_RATIO:
        return "weights", f"auto: largest class has {ratio:.1f}x the images of the smallest"
    return "none", f"auto: classes balanced within {BALANCE_AUTO_RATIO:g}x"


class StreamedImages:
    """Training pixels read from disk batch by batch (sorted reads), so RAM holds a few batches, not the set."""

    def __init__(self, images, device: torch.device):
        self.rows, self.device = as_rows(images), device

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.rows.take(idx.cpu().numpy())).to(self.device)


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
        balance: str = "none",
        compile: bool = False,
        channels_last: bool = True,
    ) -> None:
        # channels_last (NHWC) is the fast layout for oneDNN convolutions on most CPUs and on GPUs;
        # the time-budget planner measures it against NCHW per machine kind (training/fastpath.py)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device).to(memory_format=self.memory_format)
        # the compiled module shares parameters with self.model, which is what gets saved
        self.forward = torch.compile(self.model) if compile else self.model
        self.ddp = None  # the DistributedDataParallel wrapper under torchrun (set when fit starts)
        self.recipe, self.device, self.dtype, self.seed = recipe, device, dtype, seed
        self.callbacks = list(callbacks or [])
        # Resident uint8 pixels: 1 byte/px, on the GPU when there is one (no loader workers needed);
        # on-disk sets (bigger than the memory budget) are read per batch, prefetched by a thread.
        self.streamed = is_on_disk(train_set.images)
        if self.streamed:
            self.x = StreamedImages(train_set.images, device)
        else:
            self.x = torch.as_tensor(train_set.images).to(device)
        self.y = torch.as_tensor(train_set.labels).to(device)
        self.balance = balance
        self.classes = list(train_set.classes)  # stored in checkpoints: a resume must be on the same classes
        counts = torch.bincount(self.y.cpu(), minlength=len(train_set.classes)).double()
        # weights: n / (K * count) per class (1 for balanced data); sampler: P(image) proportional to 1/count
        self.class_weights = (counts.sum() / (len(counts) * counts.clamp(min=1))).float().to(device) \
            if balance == "weights" else None
        self.sample_weights = (1.0 / counts.clamp(min=1))[self.y.cpu()] if balance == "sampler" else None
        self.val_set = val_set
        n = len(self.y)
        self.batch_size = min(recipe.batch_size, n)
        self.steps_per_epoch = max(1, n // self.batch_size)  # drop the ragged tail: BN needs full batches
        self.total_steps = recipe.epochs * self.steps_per_epoch
        if recipe.total_steps:  # a time budget may plan fewer steps than whole epochs
            self.total_steps = min(self.total_steps, recipe.total_steps)
        self.opt = build_optimizer(self.model, recipe)
        self.schedule = lr_multiplier(recipe.schedule, self.total_steps, recipe.warmup)
        self.sched = LrSchedule(self.opt, self.schedule)
        self.epoch = 0  # completed epochs
        self.history: list[dict] = []
        self.best = {"val_accuracy": -1.0, "epoch": -1}
        self.stop_training = False  # set by a callback to end the run (Keras' model.stop_training)
        self.notes: list[str] = []  # facts about this run's set-up, printed at its start
        self.eval_image_seconds: float | None = None  # measured forward seconds per image view at evaluation
        self.last_val: tuple[int, torch.Tensor] | None = None  # (step, logits) of the latest validation pass

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
            "classes": self.classes,
        }

    def load_state_dict(self, state: dict) -> None:
        """Raises KeyError / RuntimeError / ValueError for a state from another model or dataset."""
        if state.get("classes", self.classes) != self.classes:
            raise ValueError(f"its {len(state['classes'])} classes differ from this data's {len(self.classes)}")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])  # restores the schedule's length too
        self.total_steps = self.schedule.total_steps
        self.epoch, self.history, self.best = state["epoch"], list(state["history"]), dict(state["best"])
        if "val_acc" in self.best:  # checkpoints written before the Keras-style log names
            self.best = {"val_accuracy": self.best["val_acc"], "epoch": self.best["epoch"]}
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
        return xb.contiguous(memory_format=self.memory_format)

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[float, int]:
        """One optimizer step of the real run: (loss, correct predictions)."""
        return self._step(self.forward, self.opt, self.sched, xb, yb)

    def _step(self, forward, opt, sched, xb: torch.Tensor, yb: torch.Tensor) -> tuple[float, int]:
        with autocast_context(self.device, self.dtype):
            logits = forward(xb)
        loss = F.cross_entropy(logits.float(), yb, weight=self.class_weights,
                               label_smoothing=self.recipe.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        correct = int((logits.argmax(1) == yb).sum())
        return float(loss.detach()), correct

    def measure_step_seconds(self, steps: int = 6, warmup_steps: int = 2) -> float:
        """Median seconds per training step (augmentation included), taken on a copy of the model and
        optimizer: the run's weights, optimizer state, schedule and RNG are left exactly as they were."""
        times = self.time_steps(steps, warmup_steps)
        return times[len(times) // 2]

    def time_steps(self, steps: int, warmup_steps: int = 1, channels_last: bool | None = None) -> list[float]:
        """Sorted seconds of `steps` training steps on a copy of the model (see measure_step_seconds), in
        the run's memory layout or the one asked for (channels_last True/False)."""
        return sorted(self.probe_steps(steps, warmup_steps, channels_last)[0])

    def probe_steps(self, steps: int, warmup_steps: int = 1, channels_last: bool | None = None,
                    dtype: torch.dtype | None | str = "run") -> tuple[list[float], list[float]]:
        """(seconds, loss) of each of `steps` timed training steps, in order, after `warmup_steps` untimed
        ones, on a copy of the model at the peak learning rate (the real run is left as it was). The batches
        are the same on every call (seeded), so two calls differing only in layout or precision (dtype:
        None = fp32, torch.bfloat16, or "run" for the run's own) see the same data from the same weights."""
        fmt = self.memory_format if channels_last is None else (
            torch.channels_last if channels_last else torch.contiguous_format)
        run_dtype, self.dtype = self.dtype, (self.dtype if dtype == "run" else dtype)
        model = copy.deepcopy(self.model).to(memory_format=fmt)
        opt = build_optimizer(model, self.recipe)
        sched = LrSchedule(opt, lambda _: 1.0)
        gen = torch.Generator().manual_seed(12345)
        times, losses = [], []
        try:
            with torch.random.fork_rng(devices=[]):  # dropout draws here must not change the real run
                model.train()
                for i in range(warmup_steps + steps):
                    idx = torch.randint(0, len(self.y), (distributed.local_batch(self.batch_size),),
                                        generator=gen).to(self.device)
                    t0 = time.perf_counter()
                    xb = self.augment(self.x[idx], idx, gen).contiguous(memory_format=fmt)
                    loss, _ = self._step(model, opt, sched, xb, self.y[idx])
                    if self.device.type == "cuda":
                        torch.cuda.synchronize()
                    if i >= warmup_steps:
                        times.append(time.perf_counter() - t0)
                        losses.append(loss)
        finally:
            self.dtype = run_dtype
        return times, losses

    def measure_eval_seconds(self, images=None, repeats: int = 2) -> float:
        """Seconds per image view of evaluation (forward in the training precision, evaluation batch size),
        the fastest of `repeats` timed passes over one batch of `images` (default: training images)."""
        images = self.x if images is None else images
        n = min(len(images), eval_batch_size(images))
        if isinstance(images, torch.Tensor | StreamedImages):
            sample = images[torch.arange(n)].cpu()
        else:
            sample = np.asarray(images[:n])
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            predict_logits(self.model, sample, self.device, self.dtype, batch_size=n,
                           channels_last=self.memory_format == torch.channels_last)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return min(times[1:]) / max(1, n)  # the first pass builds kernels: not counted

    # ---- epochs ------------------------------------------------------------------------------
    def train_epoch(self) -> dict:
        self.model.train()
        if self.recipe.bn_frozen:  # fine-tuning small batches: keep the pretrained running statistics
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        gen = epoch_generator(self.seed, self.epoch, self.device)
        torch.manual_seed(self.seed * 7919 + self.epoch)  # dropout masks
        if self.sample_weights is not None:  # class-balanced: draw with replacement, rare classes more often
            perm = torch.multinomial(self.sample_weights, len(self.y), replacement=True, generator=gen)
        else:
            perm = torch.randperm(len(self.y), generator=gen)
        perm = perm.to(self.device)
        loss_sum, correct, seen, t0 = 0.0, 0, 0, time.perf_counter()
        for batch, (idx, raw) in enumerate(self._batches(perm)):
            if self.step >= self.total_steps:
                break  # the time budget ended the schedule inside this epoch
            xb = self.augment(raw, idx, gen)
            loss, ok = self.train_step(xb, self.y[idx])
            if not math.isfinite(loss):
                raise DivergedError(self._diverged(loss))
            loss_sum, correct, seen = loss_sum + loss * len(idx), correct + ok, seen + len(idx)
            logs = {"loss": loss, "accuracy": ok / len(idx), "size": len(idx)}
            for cb in self.callbacks:
                cb.on_batch_end(batch, logs)
            distributed.agree(self)  # torchrun: every rank stops, and plans, alike
            if self.stop_training:
                break
        elapsed = time.perf_counter() - t0
        seen = max(seen, 1)
        return {"loss": loss_sum / seen, "accuracy": correct / seen, "epoch_seconds": elapsed,
                "images_per_second": seen / max(elapsed, 1e-9), "lr": self.opt.param_groups[0]["lr"]}

    def _diverged(self, loss: float) -> str:
        """The advice that works first: reduced precision is the usual suspect, then the learning rate."""
        lr = self.recipe.lr
        tries = [f"--lr {lr / 10:g}"]
        if self.dtype is not None:  # bf16/fp16 autocast: fp32 is what the numerics are tested against
            tries.insert(0, "--precision fp32")
        precision = str(self.dtype).removeprefix("torch.") if self.dtype is not None else "fp32"
        return (f"training diverged: the loss became {loss} at step {self.step} (epoch {self.epoch + 1}) with peak "
                f"learning rate {lr:g} in {precision}. Nothing non-finite was saved. "
                f"Try {' or '.join(tries)}, or --model mlp to check the data")

    def _batches(self, perm: torch.Tensor):
        """(index, uint8 pixels) per step; streamed sets fetch the next batch in a thread meanwhile."""
        # torchrun: each rank trains on its own slice of every global batch
        slices = [distributed.shard(perm[s * self.batch_size : (s + 1) * self.batch_size])
                  for s in range(self.steps_per_epoch)]
        if not self.streamed:
            yield from ((idx, self.x[idx]) for idx in slices)
            return
        with ThreadPoolExecutor(max_workers=1) as pool:  # pread releases the GIL: disk overlaps compute
            pending = pool.submit(self.x.__getitem__, slices[0])
            for step, idx in enumerate(slices):
                raw = pending.result()
                if step + 1 < len(slices):
                    pending = pool.submit(self.x.__getitem__, slices[step + 1])
                yield idx, raw

    def evaluate(self, data: ImageSet, tta: TTA | None = None) -> dict:
        t0 = time.perf_counter()
        logits = self.predict(data.images, tta)
        views = view_count(tta)
        if len(data.labels):
            self.eval_image_seconds = (time.perf_counter() - t0) / (len(data.labels) * views)
        if data is self.val_set and tta is None:
            self.last_val = (self.step, logits)  # the final evaluation reuses it when no step came after
        labels = torch.as_tensor(data.labels)
        loss = float(F.cross_entropy(logits, labels)) if len(labels) else math.nan
        acc = float((logits.argmax(1) == labels).float().mean()) if len(labels) else math.nan
        return {"loss": loss, "acc": acc}

    def fit(self) -> list[dict]:
        """Train until the planned steps are done or a callback sets stop_training; the history per epoch."""
        self.stop_training = False
        distributed.wrap_trainer(self)  # torchrun: DDP from here on (a trainer built only to measure never joins)
        for cb in self.callbacks:
            cb.set_trainer(self)
        self._emit("on_train_begin", {"epoch": self.epoch, "step": self.step})
        while self.step < self.total_steps and not self.stop_training:
            self._emit("on_epoch_begin", self.epoch, {})
            metrics = self.train_epoch()
            if self.val_set is not None and len(self.val_set):
                val = self.evaluate(self.val_set)
                metrics.update(val_loss=val["loss"], val_accuracy=val["acc"])
                if val["acc"] > self.best["val_accuracy"]:
                    self.best = {"val_accuracy": val["acc"], "epoch": self.epoch + 1}
            metrics["epoch"] = self.epoch + 1
            self.epoch += 1
            self.history.append(metrics)
            self._emit("on_epoch_end", self.epoch - 1, metrics)
            distributed.agree(self)
        self._emit("on_train_end", {"epoch": self.epoch, "step": self.step})
        return self.history

    def _emit(self, event: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(*args)

    @property
    def step(self) -> int:
        """Optimizer steps taken so far (across resumes)."""
        return self.sched.last_epoch

    @property
    def planned_epochs(self) -> int:
        return math.ceil(self.total_steps / self.steps_per_epoch)

    def set_total_steps(self, total: int) -> None:
        """Change the run's length (shorter or longer); the lr schedule continues from its current value and
        still decays to 0 at the new end."""
        self.total_steps = max(self.step + 1, int(total))
        self.schedule.set_total(self.total_steps, self.step)

    def set_precision(self, dtype: torch.dtype | None) -> None:
        """The autocast dtype of training and evaluation (None: fp32), chosen before training starts."""
        self.dtype = dtype

    def set_channels_last(self, channels_last: bool) -> None:
        """The memory layout of the model and its batches (before training starts)."""
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)

    def predict(self, images, tta: TTA | None = None) -> torch.Tensor:
        """float32 logits [N, K] on the CPU, evaluation batches, training precision and memory layout."""
        return predict_logits(self.model, images, self.device, self.dtype, batch_size=eval_batch_size(images),
                              tta=tta, channels_last=self.memory_format == torch.channels_last)

    def tta(self) -> TTA:
        return self.recipe.tta()
