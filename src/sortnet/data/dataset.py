"""In-memory (or memory-mapped) image sets: the one data representation every part of sortnet shares.

Usage:
    s = ImageSet(images=np.zeros((4, 1, 28, 28), np.uint8), labels=np.arange(4) % 2, classes=["a", "b"])
    bundle = DataBundle(train=s, val=None, test=None, classes=s.classes, preprocessing=prep, source="folder:x")
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sortnet.data.mapped import as_rows, is_on_disk
from sortnet.data.preprocess import Preprocessing


@dataclass
class SkippedFile:
    """A file that was not used, and why (shown to the user at the end of a run)."""

    path: str
    reason: str

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


@dataclass
class ImageSet:
    """Decoded images at training resolution.

    images: uint8 [N, C, H, W] (a numpy array or np.memmap); labels: int64 [N] indexes into classes.
    paths: the source file of each row (None for built-in datasets); groups: optional group id per row.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    paths: list[str] | None = None
    groups: list[str] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.labels = np.asarray(self.labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "ImageSet":
        index = np.asarray(index, dtype=np.int64)
        # On-disk images (np.memmap / MappedRows) stay on disk: a view of the rows, nothing is read.
        images = as_rows(self.images).subset(index) if is_on_disk(self.images) else self.images[index]
        return ImageSet(
            images=images,
            labels=self.labels[index],
            classes=self.classes,
            paths=[self.paths[i] for i in index] if self.paths is not None else None,
            groups=[self.groups[i] for i in index] if self.groups is not None else None,
        )

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts)}


@dataclass
class DataBundle:
    """Train/val/test sets of one data source, plus how their pixels were made (for the model file)."""

    train: ImageSet
    val: ImageSet | None
    test: ImageSet | None
    classes: list[str]
    preprocessing: Preprocessing
    source: str  # "folder:/abs/path" or "builtin:fashion-mnist"
    skipped: list[SkippedFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # human-readable facts (split used, sizes chosen)
    data: str = ""  # what the user gave: folder, CSV or built-in name (set by sortnet.prepare)
    settings: dict = field(default_factory=dict)  # the data settings it was prepared with (see config.DATA_SETTINGS)
    # the model prepare chose for model="auto" and why: {"arch", "pretrained", "reason"} (None: chosen by fit)
    choice: dict | None = None
