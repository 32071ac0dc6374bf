"""Label files: a CSV of `path,label[,group][,split]` rows as a training source.

Usage:
    from sortnet.data.csvsource import read_csv_source
    listed = read_csv_source("labels.csv")     # paths relative to the CSV's folder (absolute paths kept)
    listed.paths, listed.labels, listed.classes, listed.groups, listed.splits

A header row is optional: when the first row names the columns (path/file/filename, label/class,
group, split) they may come in any order; otherwise columns are positional: path, label, group.
The `split` column (train | val | test) fixes a row's split; without it the split is automatic.
Rows with an empty path or label are skipped with a reason; missing files are skipped at decode time.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from sortnet.data.dataset import SkippedFile
from sortnet.data.errors import DataError

CSV_HELP = "expected a CSV with rows path,label[,group] (e.g. cats/001.jpg,cat,owner_17), paths relative to the CSV"
_ALIASES = {"path": "path", "file": "path", "filename": "path", "image": "path", "label": "label",
            "class": "label", "group": "group", "split": "split"}
SPLITS = ("train", "val", "test")


@dataclass
class ListedFiles:
    """Labelled image files from a list: row i is paths[i] with class labels[i] (an index into classes)."""

    root: Path  # folder that relative paths start from
    paths: list[str]
    labels: list[int]
    classes: list[str]
    splits: list[str]  # "train" | "val" | "test" per row ("train" = automatic split)
    groups: list[str] | None = None
    skipped: list[SkippedFile] = field(default_factory=list)
    layout: str = "csv"  # "csv", or a folder's "flat" (one folder per class) / "split" (train/ val/ test/)
    val_dir: str | None = None  # a split folder's validation folder name ("val", "valid", ...)


def is_csv_source(data: str) -> bool:
    return str(data).lower().endswith(".csv") and Path(data).expanduser().is_file()


def _columns(first: list[str]) -> tuple[dict[str, int], bool]:
    """Column positions and whether the first row is a header."""
    names = [_ALIASES.get(c.strip().lower()) for c in first]
    if "path" in names and "label" in names:
        return {n: i for i, n in enumerate(names) if n}, True
    return {"path": 0, "label": 1, "group": 2}, False


def _rows(csv_path: Path) -> list[list[str]]:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:  # utf-8-sig: Excel's byte-order mark
            return [r for r in csv.reader(f) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read label file {csv_path}: {e}; {CSV_HELP}") from e


def _cell(row: list[str], cols: dict[str, int], name: str) -> str:
    i = cols.get(name)
    return row[i].strip() if i is not None and i < len(row) else ""


def read_csv_source(path: str | os.PathLike) -> ListedFiles:
    """Parse a label CSV; raises DataError for an empty file or fewer than two labels."""
    csv_path = Path(path).expanduser().resolve()
    rows = _rows(csv_path)
    if not rows:
        raise DataError(f"label file {csv_path} is empty; {CSV_HELP}")
    cols, header = _columns(rows[0])
    body = rows[1:] if header else rows
    entries, skipped = [], []
    for n, row in enumerate(body, 2 if header else 1):
        p, label = _cell(row, cols, "path"), _cell(row, cols, "label")
        split = _cell(row, cols, "split").lower() or "train"
        if not p or not label or split not in SPLITS:
            why = f"missing {'path' if not p else 'label'}" if not p or not label else f"unknown split {split!r}"
            skipped.append(SkippedFile(f"{csv_path}:{n}", f"CSV row {n}: {why}"))
            continue
        full = p if os.path.isabs(p) else os.path.normpath(os.path.join(csv_path.parent, p))
        entries.append((full, label, _cell(row, cols, "group"), split))
    classes = sorted({e[1] for e in entries if e[3] == "train"})
    if len(classes) < 2:
        raise DataError(f"label file {csv_path} has {len(classes)} training label(s) ({', '.join(classes)}); "
                        f"a classifier needs at least two; {CSV_HELP}")
    unknown = sorted({e[1] for e in entries} - set(classes))
    if unknown:
        raise DataError(f"val/test rows of {csv_path} use labels with no training rows: {', '.join(unknown)}")
    index = {c: i for i, c in enumerate(classes)}
    has_groups = "group" in cols and any(e[2] for e in entries)
    return ListedFiles(root=csv_path.parent, paths=[e[0] for e in entries], labels=[index[e[1]] for e in entries],
                       classes=classes, splits=[e[3] for e in entries],
                       groups=[e[2] or e[0] for e in entries] if has_groups else None, skipped=skipped)
