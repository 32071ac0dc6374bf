"""Training callbacks in the Keras style: the progress bar, TensorBoard, checkpoints, the time-budget keeper
and early stopping are all Callbacks, and a user's own callbacks get the same events.

Events (epoch is 0-based, as in Keras; logs is a dict):
    on_train_begin(logs)                  before the first step (logs: {"epoch": completed epochs, "step": ...})
    on_epoch_begin(epoch, logs)
    on_batch_end(batch, logs)             logs: {"loss", "accuracy", "size"} of that batch
    on_epoch_end(epoch, logs)             logs: {"loss", "accuracy", "val_loss", "val_accuracy", "lr",
                                                 "epoch_seconds", "images_per_second", "epoch"}
    on_train_end(logs)
`self.trainer` is the Trainer (set before on_train_begin); `self.trainer.stop_training = True` ends the run
after the current epoch (after the current batch when set in on_batch_end).

Usage:
    class StopAt(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs["val_accuracy"] >= 0.95:
                self.trainer.stop_training = True
    sortnet.fit(bundle, callbacks=[StopAt(), EarlyStopping(patience=3)])
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sortnet.progress import progress, write_line
from sortnet.training.checkpoint import save_checkpoint
from sortnet.runfolder.layout import CHECKPOINT_NAME

if TYPE_CHECKING:
    from sortnet.training.trainer import Trainer


class Callback:
    trainer: "Trainer | None" = None

    def set_trainer(self, trainer: "Trainer") -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict | None = None) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_train_end(self, logs: dict | None = None) -> None: ...


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs.

    Monitors ending in "loss" improve downwards, the others upwards.
    """

    def __init__(self, monitor: str = "val_accuracy", patience: int = 3, min_delta: float = 0.0) -> None:
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.best, self.wait, self.stopped_epoch = None, 0, None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        sign = -1.0 if self.monitor.endswith("loss") else 1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.trainer.stop_training = True
            self.stopped_epoch = epoch


class ProgressBar(Callback):
    """One bar per epoch: running loss, accuracy, images/s; then a line with validation metrics."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        t = self.trainer
        steps = min(t.steps_per_epoch, max(1, t.total_steps - t.step))
        self.bar = progress(total=steps, desc=f"epoch {epoch + 1}/{t.planned_epochs}", unit="batch",
                            enabled=self.enabled, leave=False, dynamic_ncols=True)
        self.loss, self.correct, self.seen, self.t0 = 0.0, 0.0, 0, time.perf_counter()

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        n = logs["size"]
        self.loss += logs["loss"] * n
        self.correct += logs["accuracy"] * n
        self.seen += n
        self.bar.update(1)
        if self.bar.n % 5 == 0 or self.bar.n == self.bar.total:
            rate = self.seen / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix(loss=f"{self.loss / self.seen:.3f}", acc=f"{self.correct / self.seen:.3f}",
                                 img_s=f"{rate:.0f}")

    def on_epoch_end(self, epoch: int, m: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.enabled:
            val = f"  val_loss {m['val_loss']:.4f}  val_acc {m['val_accuracy']:.4f}" if "val_accuracy" in m else ""
            write_line(f"epoch {epoch + 1}/{self.trainer.planned_epochs}  loss {m['loss']:.4f}  "
                       f"acc {m['accuracy']:.4f}{val}  {m['images_per_second']:.0f} img/s  "
                       f"{m['epoch_seconds']:.1f}s")


class TensorBoardLogger(Callback):
    """Scalars per epoch (loss, accuracy, lr, throughput) as TensorBoard event files."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def on_epoch_end(self, epoch: int, m: dict | None = None) -> None:
        for key, value in m.items():
            if key != "epoch":
                group = "val" if key.startswith("val_") else "train"
                self.writer.add_scalar(f"{group}/{key.removeprefix('val_')}", value, epoch + 1)
        self.writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.writer is not None:
            self.writer.close()


class CheckpointSaver(Callback):
    """After every epoch, the full training state (atomic write) so `--resume` continues exactly."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / CHECKPOINT_NAME

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        save_checkpoint(self.path, self.trainer.state_dict())
