"""Report figures into a TensorBoard log: the confusion matrix and the training curves as images.

Usage:
    log_figures(run_dir / TENSORBOARD_DIR, {"report/confusion_matrix": png_bytes}, step=epochs)
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def log_figures(log_dir: str | Path, figures: dict[str, bytes], step: int = 0) -> None:
    """Each PNG as an image summary (RGB, HWC) under its tag; appends a new event file to log_dir."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for tag, png in figures.items():
            rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
            writer.add_image(tag, rgb, global_step=step, dataformats="HWC")
    finally:
        writer.close()
