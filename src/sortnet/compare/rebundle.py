"""Views of a prepared DataBundle for comparisons: stratified subsets, and the same rows at another size.

A comparison must score every model on the same held-out images. `subset_bundle` keeps the prepared
pixels and preprocessing and picks rows; `resampled_bundle` makes the same rows at another input size
(e.g. 224 px for a pretrained family) through the one resize path, `image_to_array`: image files are
decoded again from their paths (as `prepare` reads a folder), built-in datasets' rows are converted from
their native arrays (as `prepare` converts a built-in). Only the rows asked for are made, so a 224 px copy
of a 60,000-image set costs what its subset costs.

Usage:
    rows = stratified_rows(bundle.val.labels, 2000, seed=0)        # sorted row indices, every class kept
    small = subset_bundle(bundle, train_rows=None, val_rows=rows)   # test split dropped
    big = resampled_bundle(bundle, 224, 3, train_rows, rows)        # same rows, 224 px RGB
"""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from sortnet.data.dataset import DataBundle, ImageSet
from sortnet.data.decode import BadImageError, decode_image
from sortnet.data.errors import DataError
from sortnet.data.preprocess import Preprocessing, image_to_array
from sortnet.data.sources import border_background, channel_stats, stratified_split
from sortnet.progress import progress as show


def stratified_rows(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of about `count` rows with each class's share kept (every class keeps >= 1 row)."""
    n = len(labels)
    if count >= n:
        return np.arange(n, dtype=np.int64)
    _, rows = stratified_split(np.asarray(labels), count / n, seed)
    return rows


def _rows(s: ImageSet | None, rows: np.ndarray | None) -> ImageSet | None:
    return s if s is None or rows is None else s.subset(rows)


def subset_bundle(bundle: DataBundle, train_rows: np.ndarray | None = None, val_rows: np.ndarray | None = None,
                  keep_test: bool = False) -> DataBundle:
    """The bundle with only these train/val rows (None: all); preprocessing (statistics) unchanged."""
    return dataclasses.replace(bundle, train=_rows(bundle.train, train_rows), val=_rows(bundle.val, val_rows),
                               test=bundle.test if keep_test else None, notes=list(bundle.notes))


def _remake(s: ImageSet, prep: Preprocessing, desc: str, progress: bool) -> ImageSet:
    out = np.empty((len(s), prep.channels, prep.img_size, prep.img_size), np.uint8)
    for i in show(range(len(s)), desc=desc, unit="img", enabled=progress, leave=False):
        if s.paths is not None:
            try:
                img = decode_image(s.paths[i])
            except BadImageError as e:
                raise DataError(f"{s.paths[i]} became unreadable since the data was prepared ({e.reason})") from e
        else:  # a built-in's native pixels, converted the way prepare converts built-ins
            a = np.asarray(s.images[i])
            img = Image.fromarray(a[0]) if a.shape[0] == 1 else Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0)))
        out[i] = image_to_array(img, prep)
    return ImageSet(images=out, labels=s.labels, classes=s.classes, paths=s.paths, groups=s.groups)


def resampled_bundle(bundle: DataBundle, img_size: int, channels: int, train_rows: np.ndarray | None,
                     val_rows: np.ndarray | None, progress: bool = True, crop: float = 1.0) -> DataBundle:
    """The given rows made again at img_size x channels (test split dropped), with their own statistics."""
    make = Preprocessing(img_size, channels, crop=crop)
    train = _remake(_rows(bundle.train, train_rows), make, f"{img_size} px train", progress)
    val = bundle.val and _remake(_rows(bundle.val, val_rows), make, f"{img_size} px val", progress)
    mean, std = channel_stats(train.images)
    prep = Preprocessing(img_size=img_size, channels=channels, mean=mean, std=std, crop=crop,
                         background=border_background(train.images))
    note = (f"{len(train)} train / {len(val) if val else 0} val rows made again at {img_size} px x{channels} "
            f"({'decoded from their files' if bundle.train.paths is not None else 'from the native arrays'})")
    return dataclasses.replace(bundle, train=train, val=val, test=None, preprocessing=prep,
                               notes=list(bundle.notes) + [note],
                               settings=dict(bundle.settings, img_size=img_size, channels=channels))


def is_native(bundle: DataBundle) -> bool:
    """Whether a built-in bundle's pixels are the dataset's own (so converting them is what prepare would do)."""
    from sortnet.data.builtin import DATASETS

    if not bundle.source.startswith("builtin:"):
        return True
    spec = DATASETS.get(bundle.source.split(":", 1)[1])
    p = bundle.preprocessing
    return spec is None or (spec.img_size, spec.channels) == (p.img_size, p.channels)
