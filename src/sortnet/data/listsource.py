"""Labelled file lists (label CSVs, or folders too big to hold in RAM) -> a DataBundle.

Usage:
    from sortnet.data.listsource import load_listed, listed_from_folder, memory_budget
    bundle = load_listed(read_csv_source("labels.csv"), source="csv:labels.csv", max_memory="2G")

Decoded pixels stay resident when they fit the memory budget (--max-memory; default the smaller of
25% of available RAM and RESIDENT_CAP), else they are ingested once into the on-disk cache
(sortnet.data.ingest) and streamed from it during training.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sortnet.data.csvsource import ListedFiles
from sortnet.data.dataset import DataBundle, ImageSet
from sortnet.data.errors import DataError
from sortnet.data.folder import check_train_classes, choose_size_channels, decode_files, scan_folder
from sortnet.data.ingest import ingest
from sortnet.data.preprocess import Preprocessing

RESIDENT_CAP = 1 << 30  # bytes: decoded data above this streams from disk by default (keeps train < 2 GiB RSS)
RAM_SHARE = 0.25  # at most this share of available memory is used for resident pixels by default
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


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
    if max_memory in (None, "auto"):
        return int(min(RESIDENT_CAP, RAM_SHARE * _available_memory()))
    if isinstance(max_memory, (int, float)):
        return int(max_memory)
    m = _SIZE.match(str(max_memory))
    if not m:
        raise DataError(f"cannot read max_memory {max_memory!r}; use e.g. 512M, 2G, 0 (always stream) or auto")
    return int(float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower()))


def listed_from_folder(root: str) -> ListedFiles:
    """The files of an image folder as a list (splits from train/val/test folders)."""
    scan = scan_folder(root)
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
                       skipped=list(scan.skipped), layout=scan.layout)


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
                max_memory=None, cache_dir=None) -> tuple[dict[str, ImageSet], Preprocessing, list, list[str]]:
    """(sets by split, preprocessing without stats, skipped files, notes) for a file list."""
    train_paths = [p for p, s in zip(listed.paths, listed.splits) if s == "train"]
    size, chans, notes = choose_size_channels(train_paths, img_size, channels, max_pixels)
    prep = Preprocessing(img_size=size, channels=chans)
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
        raise DataError(f"no readable images for class(es) {', '.join(empty)} in {source}: all their files were "
                        f"skipped (first reason: {skipped[0].reason if skipped else 'no files'})")
    notes.insert(0, f"found {sum(counts.values())} training images in {len(listed.classes)} classes ({listed.layout})")
    return sets, prep, listed.skipped + skipped, notes


def source_name(root: Path, kind: str) -> str:
    return f"{kind}:{Path(root).expanduser().resolve()}"
