"""One entry point for training and evaluation data: a built-in dataset name, an image folder or a label CSV.

Usage:
    from sortnet.data.sources import load_data, load_eval_data
    bundle = load_data("fashion-mnist")                  # or load_data("photos/", img_size=64)
    bundle = load_data("labels.csv", group_by="^(driver[0-9]+)_", max_memory="2G")
    test, skipped = load_eval_data("photos/", bundle.preprocessing, bundle.classes)

A built-in name wins over a same-named folder in the current directory; write "./mnist" for the folder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sortnet.config import MAX_IMG_SIZE, MIN_IMG_SIZE
from sortnet.data.builtin import DATASETS, builtin_name, read_builtin
from sortnet.data.csvsource import is_csv_source, read_csv_source
from sortnet.data.dataset import DataBundle, ImageSet, SkippedFile
from sortnet.data.errors import DataError
from sortnet.data.folder import LAYOUT_HELP, read_folder_eval
from sortnet.data.groups import grouped_split, has_real_groups, merge_groups, regex_groups
from sortnet.data.listsource import listed_from_folder, load_listed, source_name
from sortnet.data.mapped import as_rows, is_on_disk
from sortnet.data.invert import auto_inverts, model_input
from sortnet.data.preprocess import Preprocessing, border_ring
from sortnet.progress import progress as show

__all__ = ["DataError", "load_data", "load_eval_data", "stratified_split", "channel_stats", "border_background",
           "BUILTIN_NAMES"]

BUILTIN_NAMES = tuple(DATASETS)
STATS_CHUNK = 4096  # images per chunk when summing pixels (bounds float64 memory)
STATS_CHUNK_BYTES = 256 << 20  # and at most this many bytes of float64 per chunk (224 px photos: ~220 images)
STATS_SAMPLE_ON_DISK = 5000  # images sampled for mean/std when pixels stream from disk (not read in full)
BACKGROUND_SAMPLE = 2000  # images whose border ring decides "dark" vs "light"


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) row indices: per class round(n * val_fraction) rows to val, deterministic in seed.

    Every class with >= 2 rows gets >= 1 val row and keeps >= 1 train row; val_fraction 0 gives no val rows.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for label in np.unique(labels):
        rows = rng.permutation(np.nonzero(labels == label)[0])
        n = len(rows)
        k = int(round(n * val_fraction))
        if val_fraction > 0 and n >= 2:
            k = min(max(k, 1), n - 1)
        val.append(rows[:k])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    train_mask = np.ones(len(labels), bool)
    train_mask[val_idx] = False
    return np.nonzero(train_mask)[0], val_idx.astype(np.int64)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 [N, C, H, W] images on the 0..1 scale (summed in chunks)."""
    c = images.shape[1]
    total = np.zeros(c)
    total_sq = np.zeros(c)
    count = 0
    step = max(1, min(STATS_CHUNK, STATS_CHUNK_BYTES // max(1, 8 * int(np.prod(images.shape[1:])))))
    for start in range(0, len(images), step):
        chunk = images[start:start + step].astype(np.float64) / 255.0
        total += chunk.sum(axis=(0, 2, 3))
        total_sq += (chunk**2).sum(axis=(0, 2, 3))
        count += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    if count == 0:
        return (0.5,) * c, (0.25,) * c
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    std = np.where(std < 1e-3, 1.0, std)  # constant images: avoid dividing by ~0 inside the model
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def border_background(images: np.ndarray) -> str:
    """ "dark" if the median outer 1-px ring pixel (mean over channels, 0..255) is < 128, else "light"."""
    if len(images) == 0:
        return "light"
    pick = np.unique(np.linspace(0, len(images) - 1, min(len(images), BACKGROUND_SAMPLE)).round().astype(int))
    rings = []
    for start in range(0, len(pick), 256):  # chunks: 2000 float photos at 224 px would be 1.2 GB at once
        rings.append(border_ring(images[pick[start:start + 256]]))
    return "dark" if float(np.median(np.concatenate([r.ravel() for r in rings]))) < 128 else "light"


def _fit_preprocessing(train: ImageSet, img_size: int, channels: int, crop: float = 1.0) -> Preprocessing:
    images = train.images
    if is_on_disk(images) and len(images) > STATS_SAMPLE_ON_DISK:  # an even sample, not a full pass over disk
        pick = np.linspace(0, len(images) - 1, STATS_SAMPLE_ON_DISK).round().astype(np.int64)
        images = as_rows(images).subset(pick)  # still on disk: channel_stats reads it chunk by chunk
    mean, std = channel_stats(images)
    return Preprocessing(img_size=img_size, channels=channels, mean=mean, std=std,
                         background=border_background(train.images), crop=crop)


def _convert_set(s: ImageSet, prep: Preprocessing, progress: bool, invert: str = "never") -> ImageSet:
    """A native-resolution set re-made through PIL + image_to_array, exactly like files at prediction time
    (inverted as `predict --invert` would, see data/invert.py)."""
    native = (s.images.shape[1], s.images.shape[2], s.images.shape[3])
    may_invert = invert == "always" or (invert == "auto" and auto_inverts(prep))
    if (native == (prep.channels, prep.img_size, prep.img_size) and not may_invert) or len(s) == 0:
        return s
    out = np.empty((len(s), prep.channels, prep.img_size, prep.img_size), np.uint8)
    for i in show(range(len(s)), desc="resizing", unit="img", enabled=progress, leave=False):
        a = s.images[i]
        img = Image.fromarray(a[0]) if a.shape[0] == 1 else Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0)))
        out[i] = model_input(img, prep, invert)[0]
    return ImageSet(images=out, labels=s.labels, classes=s.classes, paths=s.paths, groups=s.groups)


SPLIT_SAYS_ACTUAL = 0.02  # the note gives the actual share when it is further than this from --val-fraction


def _split_note(val_fraction: float, seed: int, labels=None, val_idx=None) -> str:
    """The split in words; where tiny classes make it differ from the fraction asked, what it really did."""
    if val_fraction <= 0:
        return "validation: none (val_fraction 0)"
    note = f"validation: {val_fraction:.0%} stratified split of train, seed {seed}"
    if labels is None or val_idx is None or not len(labels):
        return note
    actual = len(val_idx) / len(labels)
    if abs(actual - val_fraction) <= SPLIT_SAYS_ACTUAL:
        return note
    counts = np.bincount(np.asarray(labels))
    small = int(((counts > 0) & (counts * val_fraction < 1)).sum())
    why = (f"every class keeps at least 1 validation and 1 training image, and {small} class(es) have under "
           f"{int(np.ceil(1 / val_fraction))} images" if small else "each class's share is rounded to whole images")
    return (f"validation: {len(val_idx)} of {len(labels)} images ({actual:.0%}, not the {val_fraction:.0%} asked: "
            f"{why}), stratified, seed {seed}")


def _load_builtin(key: str, img_size, channels, val_fraction, seed, data_root, download, progress,
                  crop: float = 1.0) -> DataBundle:
    arrays = read_builtin(key, data_root=data_root, download=download, progress=progress)
    spec = arrays.spec
    size, chans = int(img_size or spec.img_size), int(channels or spec.channels)
    prep = Preprocessing(img_size=size, channels=chans, crop=crop)
    full = _convert_set(arrays.train, prep, progress)
    test = _convert_set(arrays.test, prep, progress)
    train_idx, val_idx = stratified_split(full.labels, val_fraction, seed)
    train = full.subset(train_idx)
    val = full.subset(val_idx) if len(val_idx) else None
    notes = [f"{spec.name}: {len(train)} train, {len(val_idx)} val, {len(test)} test images ({arrays.location})",
             _split_note(val_fraction, seed, full.labels, val_idx),
             "test: fixed stratified 20% split (seed 0)" if key == "digits" else "test: official test split"]
    if (size, chans) != (spec.img_size, spec.channels):
        notes.append(f"converted from native {spec.img_size} px x {spec.channels} channel(s) "
                     f"to {size} px x {chans} channel(s)")
    return DataBundle(train=train, val=val, test=test, classes=list(spec.classes),
                      preprocessing=_fit_preprocessing(train, size, chans, crop), source=f"builtin:{spec.name}",
                      notes=notes)


def _split_train(train: ImageSet, val_fraction: float, seed: int, group_by: str | None,
                 dup_groups: dict | None) -> tuple[ImageSet, ImageSet | None, list[str]]:
    """Automatic train/val split: grouped (--group-by, CSV groups, near-duplicate clusters) or stratified."""
    notes, groupings = [], [train.groups]
    if group_by and train.paths is not None:
        ids, misses = regex_groups(train.paths, group_by)
        groupings.append(ids)
        notes.append(f"groups: --group-by {group_by!r} ({len(set(ids))} groups; {misses} file name(s) unmatched)")
    if dup_groups and train.paths is not None:
        groupings.append([dup_groups.get(p) for p in train.paths])
    ids = merge_groups(len(train), groupings)
    if val_fraction > 0 and has_real_groups(ids):
        train_idx, val_idx = grouped_split(train.labels, ids, val_fraction, seed)
        kinds = [k for k, g in (("groups", train.groups or group_by), ("duplicate clusters", dup_groups)) if g]
        notes.append(f"validation: {len(val_idx)} images ({val_fraction:.0%} target), split keeping "
                     f"{' and '.join(kinds)} on one side ({len(np.unique(ids))} groups), seed {seed}")
    else:
        train_idx, val_idx = stratified_split(train.labels, val_fraction, seed)
        notes.append(_split_note(val_fraction, seed, train.labels, val_idx))
    return train.subset(train_idx), (train.subset(val_idx) if len(val_idx) else None), notes


def _load_listed_source(data: str, img_size, channels, val_fraction, seed, progress, max_pixels, group_by,
                        dup_groups, max_memory, cache_dir, follow_links: bool = False, crop: float = 1.0) -> DataBundle:
    """A label CSV or an image folder (the one way both load): pixels resident when they fit the memory
    budget, else streamed from the on-disk ingest cache (see sortnet.data.listsource)."""
    csv = is_csv_source(data)
    listed = read_csv_source(data) if csv else listed_from_folder(data, follow_links=follow_links)
    source = source_name(Path(data), "csv" if csv else "folder")
    sets, prep, skipped, notes = load_listed(listed, source=source, img_size=img_size, channels=channels,
                                             progress=progress, max_pixels=max_pixels, max_memory=max_memory,
                                             cache_dir=cache_dir, crop=crop)
    train, val = sets["train"], sets.get("val")
    if val is None:
        train, val, split_notes = _split_train(train, val_fraction, seed, group_by, dup_groups)
        notes += split_notes
    else:
        notes.append(f"validation: given val rows ({len(val)} images)" if csv else
                     f"validation: {listed.val_dir}/ folder ({len(val)} images)")
    test = sets.get("test")
    if csv:
        notes.append(f"test: {len(test)} images" if test is not None else "test: none")
    else:
        notes.append(f"test: test/ folder ({len(test)} images)" if test is not None else "test: none (no test/ folder)")
    if skipped:
        notes.append(f"skipped {len(skipped)} file(s); see the skipped list")
    return DataBundle(train=train, val=val, test=test, classes=list(listed.classes),
                      preprocessing=_fit_preprocessing(train, prep.img_size, prep.channels, crop), source=source,
                      skipped=skipped, notes=notes)


def _not_found(data: str) -> DataError:
    return DataError(f"{data!r} is neither a built-in dataset ({', '.join(BUILTIN_NAMES)}) nor an existing "
                     f"folder: the path {Path(data).expanduser()} does not exist; {LAYOUT_HELP}")


def load_data(data: str, *, img_size: int | None = None, channels: int | None = None, val_fraction: float = 0.2,
              seed: int = 0, data_root: str | None = None, download: bool = True, progress: bool = True,
              max_pixels: int | None = None, group_by: str | None = None, dup_groups: dict | None = None,
              max_memory: str | int | None = None, cache_dir: str | None = None,
              follow_links: bool = False, crop: float = 1.0) -> DataBundle:
    """Train/val/test data from a built-in dataset name, an image folder or a label CSV, with fitted Preprocessing.

    img_size/channels None = native size for built-ins, auto-chosen for folders. Raises DataError.
    group_by: regex on file names whose match (first capture group) keeps a group on one side of the split;
    dup_groups: {path: cluster id} of duplicate/near-duplicate files, also kept on one side (from `check`);
    max_memory: decoded bytes allowed in RAM ("auto", "2G", ...) before streaming from the on-disk cache.
    follow_links: follow symbolic links that lead out of a data folder (skipped with a reason otherwise).
    crop: centre-crop fraction of the shorter side (Preprocessing.crop; pretrained nets' evaluation crop).
    """
    if channels is not None and channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    if img_size is not None and not MIN_IMG_SIZE <= int(img_size) <= MAX_IMG_SIZE:
        raise DataError(f"img_size must be {MIN_IMG_SIZE}..{MAX_IMG_SIZE} pixels, got {img_size}")
    key = builtin_name(data)
    if key is not None:
        return _load_builtin(key, img_size, channels, val_fraction, seed, data_root, download, progress, crop)
    if not Path(data).expanduser().exists():
        raise _not_found(str(data))
    return _load_listed_source(str(data), img_size, channels, val_fraction, seed, progress, max_pixels,
                               group_by, dup_groups, max_memory, cache_dir, follow_links, crop)


def _remap_labels(s: ImageSet, classes: list[str], where: str) -> ImageSet:
    """Labels of `s` (indexing s.classes) re-expressed as indices into the model's `classes`."""
    unknown = [c for c in s.classes if c not in classes]
    if unknown:
        raise DataError(f"class(es) {', '.join(unknown)} of {where} are not classes of this model "
                        f"(model classes: {', '.join(classes)})")
    mapping = np.asarray([classes.index(c) for c in s.classes], dtype=np.int64)
    return ImageSet(images=s.images, labels=mapping[s.labels], classes=list(classes), paths=s.paths, groups=s.groups)


def load_eval_data(data: str, prep: Preprocessing, classes: list[str], *, data_root: str | None = None,
                   download: bool = True, progress: bool = True,
                   max_pixels: int | None = None, follow_links: bool = False,
                   invert: str = "never") -> tuple[ImageSet, list[SkippedFile]]:
    """Images to evaluate a trained model on, made with the model's `prep`, labels indexing the model's `classes`.

    Built-in -> its official test split; folder with test/ -> that (else val/); plain class folder -> every image.
    invert: as `predict --invert` (data/invert.py), so evaluate and predict see the same input for each file.
    """
    key = builtin_name(data)
    if key is not None:
        arrays = read_builtin(key, data_root=data_root, download=download, progress=progress)
        test = _convert_set(arrays.test, prep, progress, invert)
        return _remap_labels(test, list(classes), f"built-in dataset {key}"), []
    if not Path(data).expanduser().exists():
        raise _not_found(str(data))
    images, skipped, _ = read_folder_eval(data, prep, list(classes), progress=progress, max_pixels=max_pixels,
                                          follow_links=follow_links, invert=invert)
    return images, skipped


def count_images(data: str) -> int | None:
    """Images listed in a folder or label CSV (all splits; no decoding); None for built-in names and missing paths."""
    if builtin_name(str(data)) is not None or not Path(data).expanduser().exists():
        return None
    return len((read_csv_source(str(data)) if is_csv_source(str(data)) else listed_from_folder(str(data))).paths)


def median_image_side(data: str) -> float | None:
    """Median shorter side (px) of up to AUTO_SAMPLE training images of a folder or label CSV (headers only);
    None for built-in names, missing paths and folders without readable images."""
    from sortnet.data.decode import BadImageError, probe_image
    from sortnet.data.folder import AUTO_SAMPLE, even_sample

    if builtin_name(str(data)) is not None or not Path(data).expanduser().exists():
        return None
    listed = read_csv_source(str(data)) if is_csv_source(str(data)) else listed_from_folder(str(data))
    sides = []
    for path in even_sample([p for p, s in zip(listed.paths, listed.splits) if s == "train"], AUTO_SAMPLE):
        try:
            info = probe_image(path)
        except BadImageError:
            continue
        sides.append(min(info.width, info.height))
    return float(np.median(sides)) if sides else None
