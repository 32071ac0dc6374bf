"""Training events: progress bar, TensorBoard, checkpoints — each a Callback the Trainer calls.

Usage:
    Trainer(..., callbacks=[ProgressBar(), TensorBoardLogger(run_dir / "tensorboard"), CheckpointSaver(run_dir)])
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from sortnet.training.checkpoint import CHECKPOINT_NAME, save_checkpoint

if TYPE_CHECKING:
    from sortnet.training.trainer import Trainer


class Callback:
    def on_train_start(self, trainer: "Trainer") -> None: ...

    def on_batch_end(self, trainer: "Trainer", loss: float, correct: int, n: int) -> None: ...

    def on_epoch_end(self, trainer: "Trainer", metrics: dict) -> None: ...

    def on_train_end(self, trainer: "Trainer") -> None: ...


class ProgressBar(Callback):
    """One bar per epoch: running loss, accuracy, images/s; then a line with validation metrics."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar = None

    def _open(self, trainer: "Trainer") -> None:
        steps = min(trainer.steps_per_epoch, trainer.total_steps - trainer.step + 1)
        self.bar = tqdm(total=steps, desc=f"epoch {trainer.epoch + 1}/{trainer.planned_epochs}",
                        unit="batch", leave=False, dynamic_ncols=True, disable=not self.enabled)
        self.loss, self.correct, self.seen, self.t0 = 0.0, 0, 0, time.perf_counter()

    def on_batch_end(self, trainer: "Trainer", loss: float, correct: int, n: int) -> None:
        if self.bar is None:
            self._open(trainer)
        self.loss, self.correct, self.seen = self.loss + loss * n, self.correct + correct, self.seen + n
        self.bar.update(1)
        if self.bar.n % 5 == 0 or self.bar.n == self.bar.total:
            rate = self.seen / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix(loss=f"{self.loss / self.seen:.3f}", acc=f"{self.correct / self.seen:.3f}",
                                 img_s=f"{rate:.0f}")

    def on_epoch_end(self, trainer: "Trainer", m: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.enabled:
            val = f"  val_loss {m['val_loss']:.4f}  val_acc {m['val_acc']:.4f}" if "val_acc" in m else ""
            tqdm.write(f"epoch {m['epoch']}/{trainer.planned_epochs}  loss {m['train_loss']:.4f}  "
                       f"acc {m['train_acc']:.4f}{val}  {m['images_per_second']:.0f} img/s  "
                       f"{m['epoch_seconds']:.1f}s")


class TensorBoardLogger(Callback):
    """Scalars per epoch (loss, accuracy, lr, throughput) as TensorBoard event files."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer = None

    def on_train_start(self, trainer: "Trainer") -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def on_epoch_end(self, trainer: "Trainer", m: dict) -> None:
        for key, value in m.items():
            if key != "epoch":
                group = "val" if key.startswith("val_") else "train"
                self.writer.add_scalar(f"{group}/{key.removeprefix('val_').removeprefix('train_')}", value,
                                       m["epoch"])
        self.writer.flush()

    def on_train_end(self, trainer: "Trainer") -> None:
        if self.writer is not None:
            self.writer.close()


class CheckpointSaver(Callback):
    """After every epoch, the full training state (atomic write) so `--resume` continues exactly."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / CHECKPOINT_NAME

    def on_epoch_end(self, trainer: "Trainer", metrics: dict) -> None:
        save_checkpoint(self.path, trainer.state_dict())
