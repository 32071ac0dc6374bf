"""Write images of a built-in dataset as PNG files in class folders (to try `predict` on real files).

Usage:
    export_images("fashion-mnist", "demo-images/", split="test", limit=8)
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from sortnet.atomic import atomic_write_bytes, check_output
from sortnet.data.errors import DataError
from sortnet.data.sources import load_data


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "class"


def export_images(name: str, out: str | Path, split: str = "test", limit: int | None = 20,
                  data_root: str | None = None, download: bool = True) -> list[Path]:
    """The first `limit` images of a split as out/<class>/<index>.png; returns the written paths. New files only:
    OutputError (nothing written) when any of them exists."""
    bundle = load_data(name, data_root=data_root, download=download, progress=False)
    images = {"train": bundle.train, "val": bundle.val, "test": bundle.test}.get(split)
    if images is None:
        raise DataError(f"{name} has no {split!r} split; use train, val or test")
    out = Path(out)
    count = len(images) if limit is None else min(limit, len(images))
    paths = [out / _safe_name(images.classes[int(images.labels[i])]) / f"{split}_{i:05d}.png" for i in range(count)]
    for path in paths:  # all checked before the first is written: never a half export next to a user's file
        check_output(path, new=True)
    for i, path in enumerate(paths):
        arr = np.asarray(images.images[i])  # uint8 [C, H, W]
        buf = io.BytesIO()
        Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)).save(buf, format="PNG")
        atomic_write_bytes(path, buf.getvalue(), new=True)
    return paths
