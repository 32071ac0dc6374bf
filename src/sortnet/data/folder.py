"""Image folders on disk -> decoded ImageSets (one sub-folder per class), skipping bad files with a reason.

Usage:
    scan = scan_folder("photos")                 # what is on disk, by split and class (nothing decoded)
    images, kept, skipped = decode_files(paths, prep, progress=True)
    test, skipped, split = read_folder_eval("photos", prep, classes)

Training folders are loaded by sortnet.data.listsource (read_folder / load_listed), the one folder loader.

Layouts: DATA/<class>/<images> (flat), or DATA/train/<class>/... with optional DATA/val|valid|validation/<class>/...
and DATA/test/<class>/... . Sub-folders inside a class folder are searched too; hidden names (".x") are ignored.
Folders are listed by sortnet.data.walk (each real folder once, links kept inside DATA unless follow_links,
only regular files within the size cap). Splitting and per-channel statistics are done by sortnet.data.sources.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sortnet.data.dataset import ImageSet, SkippedFile
from sortnet.data.decode import BadImageError, decode_or_reason, has_image_extension, probe_image
from sortnet.data.errors import DataError
from sortnet.data.invert import model_input
from sortnet.data.preprocess import Preprocessing
from sortnet.data.walk import LOOP_REASON, Walker
from sortnet.parallel import process_map
from sortnet.progress import progress as show

LAYOUT_HELP = (
    "expected DATA/<class>/<image files> (e.g. photos/cat/1.jpg, photos/dog/2.jpg), or DATA/train/<class>/... "
    "with optional DATA/val/<class>/... and DATA/test/<class>/..."
)
VAL_DIR_NAMES = ("val", "valid", "validation")
PARALLEL_MIN_FILES = 200  # below this, process start-up costs more than it saves
AUTO_SAMPLE = 200  # files whose headers are read to choose img_size / channels
AUTO_SIZE_MAX = 64  # median shorter side <= this (px) is used as img_size; larger images get DEFAULT_SIZE
DEFAULT_SIZE = 128
MIN_AUTO_SIZE = 8  # px; smaller inputs break most architectures


@dataclass
class FolderScan:
    """What is on disk: per split ("train"/"val"/"test"), class name -> sorted image paths."""

    root: Path
    layout: str  # "flat" or "split"
    splits: dict[str, dict[str, list[str]]]
    skipped: list[SkippedFile] = field(default_factory=list)  # non-image files in class folders + not read (walk)
    val_dir: str | None = None  # the folder name used for validation ("val", "valid", ...)
    hidden: list[str] = field(default_factory=list)  # hidden entries (not entered)
    stray: list[str] = field(default_factory=list)  # files outside class folders or without an image extension


def _class_files(walker: Walker, class_dir: Path, scan: FolderScan) -> list[str]:
    """Image paths under one class folder (recursively, sorted); other regular files become stray + skipped."""
    images: list[str] = []
    for path in walker.files(class_dir):
        if has_image_extension(path):
            images.append(path)
        else:
            scan.stray.append(path)
            scan.skipped.append(SkippedFile(path, "not an image extension"))
    return images


def _claim_classes(walker: Walker, bases: dict[str, Path]) -> dict[str, dict[str, Path]]:
    """Class folders per split, every one claimed before any is read: a link from one class into another
    (or into a split or the root) is then a loop, never a second copy of those images."""
    for base in bases.values():
        walker.claim(base)
    by_split = {split: walker.subdirs(base) for split, base in bases.items()}
    for dirs in by_split.values():
        for name, path in sorted(dirs.items(), key=lambda item: item[1].is_symlink()):  # real folders first
            if not walker.claim(path):
                walker.skip(str(path), LOOP_REASON)
                del dirs[name]
    return by_split


def scan_folder(root: str | os.PathLike, *, follow_links: bool = False) -> FolderScan:
    """The image files under `root` by split and class; raises DataError when root is missing or not a folder.

    follow_links: also follow symbolic links that lead outside `root` (links inside it are always followed,
    each real folder once).
    """
    root_path = Path(root).expanduser()
    if not root_path.exists():
        raise DataError(f"data folder {root_path} does not exist; {LAYOUT_HELP}")
    if not root_path.is_dir():
        raise DataError(f"{root_path} is not a folder; {LAYOUT_HELP}")
    walker = Walker(root_path, follow_links=follow_links)
    walker.claim(root_path)
    top = walker.subdirs(root_path)
    lower = {name.lower(): path for name, path in top.items()}
    val_name = next((n for n in VAL_DIR_NAMES if n in lower), None)
    named = {"train": lower.get("train"), "val": lower.get(val_name) if val_name else None, "test": lower.get("test")}
    is_split = any(p is not None and walker.subdirs(p) for p in named.values())
    scan = FolderScan(root=root_path.resolve(), layout="split" if is_split else "flat", splits={}, val_dir=None)
    bases = {s: p for s, p in named.items() if p is not None} if is_split else {"train": root_path}
    for split, dirs in _claim_classes(walker, bases).items():
        scan.splits[split] = {name: _class_files(walker, path, scan) for name, path in dirs.items()}
    scan.stray += walker.entries(root_path)[1]
    if is_split:
        scan.val_dir = lower[val_name].name if val_name else None
        for base in bases.values():
            scan.stray += walker.entries(base)[1]
        for other in sorted(set(top.values()) - set(bases.values())):
            scan.stray += walker.files(other)  # folders beside train/val/test are not classes
    scan.stray = sorted(set(scan.stray))
    scan.skipped += walker.skipped
    scan.hidden = sorted(walker.hidden)
    return scan


def _root_has_images(root: Path) -> bool:
    return any(has_image_extension(p) for p in Walker(root).entries(root)[1])


def check_train_classes(scan: FolderScan) -> list[str]:
    """Sorted class names of the training split; DataError for layouts that cannot train a classifier."""
    where = scan.root / "train" if scan.layout == "split" else scan.root
    if "train" not in scan.splits:
        raise DataError(f"{scan.root} has {'/'.join(scan.splits)} folders but no train/ folder; {LAYOUT_HELP}")
    train = scan.splits["train"]
    if not train:
        extra = " (image files found directly in it; move them into one sub-folder per class)" \
            if _root_has_images(where) else ""
        raise DataError(f"no class folders in {where}{extra}; {LAYOUT_HELP}")
    if len(train) == 1:
        raise DataError(f"only one class folder ({next(iter(train))!r}) in {where}; a classifier needs at least "
                        f"two; {LAYOUT_HELP}")
    for name, files in train.items():
        if not files:
            raise DataError(f"class folder {where / name} has no image files "
                            f"(extensions: .jpg .jpeg .png .bmp .gif .webp .tif .tiff); {LAYOUT_HELP}")
    classes = sorted(train)
    for split in ("val", "test"):
        unknown = sorted(set(scan.splits.get(split, {})) - set(classes))
        if unknown:
            raise DataError(f"{split} folder has classes not in train/: {', '.join(unknown)} "
                            f"(train classes: {', '.join(classes)})")
    return classes


def even_sample(items: list[str], k: int) -> list[str]:
    if len(items) <= k:
        return list(items)
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, k).round().astype(int))]


def choose_size_channels(paths: list[str], img_size: int | None, channels: int | None,
                         max_pixels: int | None = None) -> tuple[int, int, list[str]]:
    """img_size and channels (given ones kept; missing ones chosen from up to AUTO_SAMPLE headers) + notes."""
    notes: list[str] = []
    if img_size is not None and channels is not None:
        return int(img_size), int(channels), notes
    infos = []
    for path in even_sample(paths, AUTO_SAMPLE):
        try:
            infos.append(probe_image(path, max_pixels))
        except BadImageError:
            continue  # reported later, when the file is decoded
    if channels is None:
        channels = 1 if infos and all(i.grey for i in infos) else 3
        why = "all sampled images are greyscale" if channels == 1 else "sampled images include colour"
        notes.append(f"channels {channels} chosen: {why}")
    if img_size is None:
        median = float(np.median([min(i.width, i.height) for i in infos])) if infos else float(DEFAULT_SIZE)
        img_size = max(MIN_AUTO_SIZE, int(round(median))) if median <= AUTO_SIZE_MAX else DEFAULT_SIZE
        notes.append(f"img_size {img_size} chosen from median image size (shorter side {median:g} px)")
    return int(img_size), int(channels), notes


def _decode_one(path: str, prep: Preprocessing, max_pixels: int | None,
                invert: str = "never") -> tuple[np.ndarray | None, str | None]:
    """(uint8 [C, H, W], None) for a good file, (None, reason) for a bad one. Runs in worker processes.
    invert: "never" (training) or as `predict --invert` (evaluation; data/invert.py decides per file)."""
    pair, reason = decode_or_reason(path, max_pixels, convert=functools.partial(model_input, prep=prep,
                                                                                 invert=invert))
    return (None, reason) if pair is None else (pair[0], None)


def decode_files(paths: list[str], prep: Preprocessing, *, progress: bool = False, max_pixels: int | None = None,
                 workers: int | None = None, invert: str = "never") -> tuple[np.ndarray, np.ndarray, list[SkippedFile]]:
    """Decode `paths` to uint8 [M, C, S, S]; returns (images, index of each row into paths, skipped files).

    More than PARALLEL_MIN_FILES files are decoded by a process pool using every core (or `workers`).
    """
    n = len(paths)
    out = np.empty((n, prep.channels, prep.img_size, prep.img_size), np.uint8)
    kept: list[int] = []
    skipped: list[SkippedFile] = []
    work = functools.partial(_decode_one, prep=prep, max_pixels=max_pixels, invert=invert)
    bar = show(total=n, desc="decoding", unit="img", enabled=progress, leave=False)
    results = process_map(work, paths, workers=workers, min_items=PARALLEL_MIN_FILES + 1)
    try:
        for i, (arr, reason) in enumerate(results):
            if arr is None:
                skipped.append(SkippedFile(paths[i], reason or "unreadable"))
            else:
                out[len(kept)] = arr  # compact in place: good rows first, no second copy
                kept.append(i)
            bar.update(1)
    finally:
        bar.close()
        results.close()  # stops the worker pool at once when decoding ends early
    return out[: len(kept)], np.asarray(kept, dtype=np.int64), skipped


def _flatten(split: dict[str, list[str]], class_index: dict[str, int]) -> tuple[list[str], list[int]]:
    paths, labels = [], []
    for name in sorted(split):
        paths.extend(split[name])
        labels.extend([class_index[name]] * len(split[name]))
    return paths, labels


def decode_splits(scan: FolderScan, splits: list[str], classes: list[str], prep: Preprocessing, *,
                  progress: bool = False, max_pixels: int | None = None,
                  invert: str = "never") -> tuple[dict[str, ImageSet], list]:
    """Decode the named splits of a scan in one pass; labels index `classes` (every folder class must be in it)."""
    class_index = {c: i for i, c in enumerate(classes)}
    all_paths: list[str] = []
    all_labels: list[int] = []
    bounds = {}
    for split in splits:
        paths, labels = _flatten(scan.splits[split], class_index)
        bounds[split] = (len(all_paths), len(all_paths) + len(paths))
        all_paths += paths
        all_labels += labels
    images, kept, skipped = decode_files(all_paths, prep, progress=progress, max_pixels=max_pixels, invert=invert)
    labels = np.asarray(all_labels, dtype=np.int64)
    sets = {}
    for split, (lo, hi) in bounds.items():
        rows = np.nonzero((kept >= lo) & (kept < hi))[0]
        sets[split] = ImageSet(images=images[rows] if len(rows) < len(kept) else images, labels=labels[kept[rows]],
                               classes=list(classes), paths=[all_paths[i] for i in kept[rows]])
    return sets, skipped


def read_folder_eval(root: str | os.PathLike, prep: Preprocessing, classes: list[str], *, progress: bool = False,
                     max_pixels: int | None = None, follow_links: bool = False,
                     invert: str = "never") -> tuple[ImageSet, list[SkippedFile], str]:
    """Evaluation images of a folder labelled with the model's `classes`: test/, else val/, else every image.

    Returns (images, skipped files, which split was used). A folder class unknown to the model is a DataError.
    """
    scan = scan_folder(root, follow_links=follow_links)
    split = next((s for s in ("test", "val") if s in scan.splits), None) if scan.layout == "split" else "train"
    if split is None:
        raise DataError(f"{scan.root} has a train/ folder but no test/ or val/ folder to evaluate on; {LAYOUT_HELP}")
    found = scan.splits[split]
    if not any(found.values()):
        raise DataError(f"no images to evaluate in {scan.root}; {LAYOUT_HELP}")
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"class folder(s) {', '.join(unknown)} in {scan.root} are not classes of this model "
                        f"(model classes: {', '.join(classes)})")
    sets, skipped = decode_splits(scan, [split], classes, prep, progress=progress, max_pixels=max_pixels,
                                  invert=invert)
    return sets[split], scan.skipped + skipped, split
