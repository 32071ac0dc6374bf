"""Grouped train/val splits: every group (a driver, a photo id, a near-duplicate cluster) on one side.

Usage:
    from sortnet.data.groups import regex_groups, merge_groups, grouped_split
    groups = regex_groups(paths, r"^(driver\\d+)_")          # group id per file, from its file name
    ids = merge_groups(len(paths), [groups, dup_ids])         # files linked by any grouping share an id
    train_idx, val_idx = grouped_split(labels, ids, val_fraction=0.2, seed=0)

The split is stratified as well as grouped: groups are visited in a seeded random order and each goes
to validation when that brings every class's validation count closer to round(n_class * val_fraction)
without leaving a class with no training image.
"""
from __future__ import annotations

import os
import re

import numpy as np

from sortnet.data.errors import DataError
from sortnet.data.phash import clusters


def regex_groups(paths: list[str], pattern: str) -> tuple[list[str], int]:
    """(group id per path, how many file names did not match) for --group-by REGEX.

    The id is the first capture group when the pattern has one, else the whole match; a file whose
    name does not match is its own group.
    """
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise DataError(f"--group-by {pattern!r} is not a valid regular expression ({e}); "
                        r"e.g. --group-by '^(\w+?)_' groups driver17_0001.jpg with driver17_0002.jpg") from e
    out, misses = [], 0
    for p in paths:
        m = rx.search(os.path.basename(p))
        if m is None:
            out.append("\0file:" + p)
            misses += 1
        else:
            out.append("\0re:" + (m.group(1) if rx.groups and m.group(1) is not None else m.group(0)))
    return out, misses


def merge_groups(n: int, groupings: list[list | np.ndarray | None]) -> np.ndarray:
    """One id per row such that rows sharing an id in any grouping share the merged id (union-find)."""
    pairs: list[tuple[int, int]] = []
    for grouping in groupings:
        if grouping is None:
            continue
        first: dict = {}
        for i, g in enumerate(grouping):
            if g is None:
                continue
            j = first.setdefault(g, i)
            if j != i:
                pairs.append((j, i))
    return clusters(n, pairs)


def has_real_groups(ids: np.ndarray) -> bool:
    """True when some group holds more than one row (otherwise a plain stratified split is the same)."""
    return len(ids) > 0 and len(np.unique(ids)) < len(ids)


def grouped_split(labels: np.ndarray, ids: np.ndarray, val_fraction: float, seed: int,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) row indices with every group id entirely on one side."""
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1 if len(labels) else 0
    uniq, inverse = np.unique(np.asarray(ids), return_inverse=True)
    counts = np.zeros((len(uniq), k), np.int64)  # [group, class] rows
    np.add.at(counts, (inverse, labels), 1)
    total = counts.sum(0)
    target = np.round(total * val_fraction)
    if val_fraction > 0:
        target = np.where(total >= 2, np.clip(target, 1, total - 1), target)
    val_counts = np.zeros(k, np.int64)
    in_val = np.zeros(len(uniq), bool)
    for g in np.random.default_rng(seed).permutation(len(uniq)):
        after = val_counts + counts[g]
        gain = np.abs(val_counts - target).sum() - np.abs(after - target).sum()
        if gain > 0 and np.all((total - after >= 1) | (total == 0)):
            in_val[g], val_counts = True, after
    val_mask = in_val[inverse]
    return np.nonzero(~val_mask)[0], np.nonzero(val_mask)[0]
