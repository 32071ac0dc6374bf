"""What a run prints when it starts: the data, the notes of the data and the plan, the model and device.

Usage:
    for line in data_lines(bundle): log(line)
    announce_trainer(cfg, bundle, trainer, device, dtype, run_dir, resumed=False)
"""
from __future__ import annotations

from sortnet.config import TrainConfig
from sortnet.data.dataset import DataBundle
from sortnet.textsafe import terminal_safe


def data_lines(bundle: DataBundle) -> list[str]:
    """The data line (source, classes, split sizes, input size) then the bundle's notes, terminal-safe (they name
    folders and classes from the disk)."""
    p = bundle.preprocessing
    counts = f"{len(bundle.train)} train / {len(bundle.val) if bundle.val else 0} val / " \
             f"{len(bundle.test) if bundle.test else 0} test"
    crop = f" (centre crop {p.crop:g})" if p.crop != 1 else ""
    line = f"data: {bundle.source}  {len(bundle.classes)} classes  {counts}  {p.img_size}px x{p.channels}{crop}"
    return [terminal_safe(line)] + [terminal_safe(f"  {note}") for note in bundle.notes]


def announce_trainer(cfg: TrainConfig, bundle: DataBundle, trainer, device, dtype, run_dir, resumed: bool) -> None:
    """A Trainer-driven run's start (from scratch): data, notes, then model, length, optimizer and device."""
    if not cfg.progress:
        return
    recipe = trainer.recipe
    if resumed:
        print(f"resuming {run_dir} after epoch {trainer.epoch}/{recipe.epochs}", flush=True)
    lines = data_lines(bundle) + [terminal_safe(f"  {note}") for note in trainer.notes]
    prec = "fp32" if dtype is None else str(dtype).removeprefix("torch.")
    where = f"  run dir {run_dir}" if run_dir is not None else ""
    lines.append(f"model: {recipe.model}  {recipe.epochs} epochs  batch {recipe.batch_size}  {recipe.optimizer} "
                 f"lr {recipe.lr:g}  device {device} {prec}{where}")
    for line in lines:
        print(line, flush=True)
