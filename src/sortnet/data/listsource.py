"""Labelled file lists (label CSVs and image folders) -> decoded sets: the one way folders are loaded.

Usage:
    from sortnet.data.listsource import load_listed, listed_from_folder, memory_budget, read_folder
    sets, prep, skipped, notes = load_listed(listed_from_folder("photos"), source="folder:photos", max_memory="2G")
    fd = read_folder("photos")        # the same, as FolderData (train / val / test sets of a folder)

Decoded pixels stay resident when they fit the memory budget (--max-memory; default the smaller of
25% of available RAM and RESIDENT_CAP), else they are ingested once into the on-disk cache
(sortnet.data.ingest) and streamed from it during training.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sortnet.config import parse_size
from sortnet.data.csvsource import ListedFiles
from sortnet.data.dataset import ImageSet, SkippedFile
from sortnet.data.errors import DataError
from sortnet.data.folder import check_train_classes, choose_size_channels, decode_files, scan_folder
from sortnet.data.ingest import ingest
from sortnet.data.preprocess import Preprocessing

RESIDENT_CAP = 1 << 30  # bytes: decoded data above this streams from disk by default (keeps train < 2 GiB RSS)
RAM_SHARE = 0.25  # at most this share of available memory is used for resident pixels by default
LAYOUT_WORDS = {"flat": "one folder per class", "split": "train/val/test folders", "csv": "label CSV"}


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30  # unknown platform: assume 8 GiB


def memory_budget(max_memory: str | int | None) -> int:
    """Bytes of decoded pixels allowed in RAM: "auto"/None, a number of bytes, or "512M", "2G", "0"."""
    if max_memory is None or str(max_memory).strip().lower() == "auto":
        return int(min(RESIDENT_CAP, RAM_SHARE * _available_memory()))
    return parse_size(max_memory, "max_memory")


def listed_from_folder(root: str, follow_links: bool = False) -> ListedFiles:
    """The files of an image folder as a list (splits from train/val/test folders)."""
    scan = scan_folder(root, follow_links=follow_links)
    classes = check_train_classes(scan)
    index = {c: i for i, c in enumerate(classes)}
    paths, labels, splits = [], [], []
    for split in ("train", "val", "test"):
        for cls in sorted(scan.splits.get(split, {})):
            files = scan.splits[split][cls]
            paths += files
            labels += [index[cls]] * len(files)
            splits += [split] * len(files)
    return ListedFiles(root=scan.root, paths=paths, labels=labels, classes=classes, splits=splits,
                       skipped=list(scan.skipped), layout=scan.layout, val_dir=scan.val_dir)


def _decode(listed: ListedFiles, prep: Preprocessing, budget: int, progress: bool, max_pixels, cache_dir):
    """(images, kept row index, skipped, note): resident when within budget, else ingested to disk."""
    need = len(listed.paths) * prep.channels * prep.img_size * prep.img_size
    if need <= budget:
        images, kept, skipped = decode_files(listed.paths, prep, progress=progress, max_pixels=max_pixels)
        return images, kept, skipped, None
    result = ingest(listed.paths, prep, cache_dir=cache_dir, progress=progress, max_pixels=max_pixels)
    kept = np.flatnonzero(result.ok)
    how = f"decoded {result.decoded} now" if result.decoded else "no decoding: cache complete"
    note = (f"streaming from disk cache {result.folder} ({need / 2**30:.2f} GiB decoded > memory budget "
            f"{budget / 2**30:.2f} GiB; {how})")
    return result.images.subset(kept), kept, result.skipped, note


def load_listed(listed: ListedFiles, *, source: str, img_size=None, channels=None, progress=True, max_pixels=None,
                max_memory=None, cache_dir=None, crop: float = 1.0
                ) -> tuple[dict[str, ImageSet], Preprocessing, list, list[str]]:
    """(sets by split, preprocessing without stats, skipped files, notes) for a file list."""
    train_paths = [p for p, s in zip(listed.paths, listed.splits) if s == "train"]
    size, chans, notes = choose_size_channels(train_paths, img_size, channels, max_pixels)
    prep = Preprocessing(img_size=size, channels=chans, crop=crop)
    images, kept, skipped, note = _decode(listed, prep, memory_budget(max_memory), progress, max_pixels, cache_dir)
    if note:
        notes.append(note)
    labels = np.asarray(listed.labels, np.int64)[kept]
    splits = np.asarray(listed.splits)[kept]
    full = ImageSet(images=images, labels=labels, classes=list(listed.classes),
                    paths=[listed.paths[i] for i in kept],
                    groups=[listed.groups[i] for i in kept] if listed.groups else None)
    sets = {s: full.subset(np.flatnonzero(splits == s)) for s in ("train", "val", "test") if (splits == s).any()}
    counts = sets["train"].class_counts() if "train" in sets else {c: 0 for c in listed.classes}
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise DataError(f"no readable images for class(es) {', '.join(empty)} in {listed.root}: all their files were "
                        f"skipped (first reason: {skipped[0].reason if skipped else 'no files'})")
    notes.insert(0, f"found {sum(counts.values())} training images in {len(listed.classes)} classes "
                    f"({LAYOUT_WORDS.get(listed.layout, listed.layout)})")
    return sets, prep, listed.skipped + skipped, notes


@dataclass
class FolderData:
    """Decoded folder contents at one resolution; val/test are None when the folder has none."""

    train: ImageSet
    val: ImageSet | None
    test: ImageSet | None
    classes: list[str]
    img_size: int
    channels: int
    skipped: list[SkippedFile]
    notes: list[str]
    layout: str  # "flat" or "split"
    val_dir: str | None


def read_folder(root: str | os.PathLike, *, img_size: int | None = None, channels: int | None = None,
                progress: bool = False, max_pixels: int | None = None, max_memory=None,
                cache_dir=None, follow_links: bool = False) -> FolderData:
    """Scan, validate and decode a training folder (train + val/ + test/ folders when present)."""
    listed = listed_from_folder(str(root), follow_links=follow_links)
    sets, prep, skipped, notes = load_listed(listed, source=source_name(listed.root, "folder"), img_size=img_size,
                                             channels=channels, progress=progress, max_pixels=max_pixels,
                                             max_memory=max_memory, cache_dir=cache_dir)
    return FolderData(train=sets["train"], val=sets.get("val"), test=sets.get("test"), classes=list(listed.classes),
                      img_size=prep.img_size, channels=prep.channels, skipped=skipped, notes=notes,
                      layout=listed.layout, val_dir=listed.val_dir)


def source_name(root: Path, kind: str) -> str:
    return f"{kind}:{Path(root).expanduser().resolve()}"
