"""`sortnet check DATA`: what is in a training folder or label CSV, and what is wrong with it.

Usage:
    from sortnet.data.check import run_check, format_report
    result = run_check("photos/")          # CheckResult; result.report is JSON-ready, result.fatal a list
    print(format_report(result.report))

Reports per-class counts (imbalance, too few images), unreadable files with the reason, tiny images,
extreme aspect ratios, size/mode/format summary, EXIF-rotated count, hidden and stray files (never
classes), exact duplicates (SHA-256) and near-duplicates (pHash within NEAR_DUP_BITS bits) within a
class, across classes (conflicting labels) and across train/val/test (leakage).
Fatal (non-zero exit): no classes, one class, a class with no readable image. Files are only read.
Per-file facts are cached (sortnet.data.filecache), so a second check costs one stat per file.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sortnet.data.csvsource import is_csv_source, read_csv_source
from sortnet.data.errors import DataError
from sortnet.data.filecache import file_facts_many
from sortnet.data.folder import LAYOUT_HELP, scan_folder
from sortnet.data.phash import COLOUR_TOLERANCE, NEAR_DUP_BITS, clusters, near_duplicate_pairs

MIN_PER_CLASS = 10  # fewer readable images than this in a class: warned (too few to learn or validate)
IMBALANCE_WARN = 3.0  # largest / smallest class count at or above this: warned
TINY_PX = 16  # shorter side below this (px): "tiny"
ASPECT_MAX = 4.0  # long side / short side above this: "extreme aspect ratio"
# Duplicate clusters bigger than this share of readable files (and > SPLIT_GROUP_MIN) are not kept on one
# side of the split: chains of near-duplicates across uniform images (white-background product shots)
# could otherwise swallow whole classes and leave validation without them.
SPLIT_GROUP_SHARE = 0.01
SPLIT_GROUP_MIN = 20


@dataclass
class Row:
    path: str
    label: str
    split: str  # train | val | test


@dataclass
class Listing:
    """Files to check, plus what the listing itself found (hidden/stray files, structural problems)."""

    source: str
    layout: str
    root: Path
    rows: list[Row]
    classes: list[str]
    hidden: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)
    unreadable: list[dict] = field(default_factory=list)
    not_read: list[dict] = field(default_factory=list)  # links not followed, special and oversized files
    fatal: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    report: dict
    fatal: list[str]
    warnings: list[str]
    dup_ids: dict[str, int]  # path -> duplicate/near-duplicate cluster id (only files in clusters of >= 2)


def _list_folder(root: Path, follow_links: bool = False) -> Listing:
    scan = scan_folder(root, follow_links=follow_links)
    listing = Listing(source=f"folder:{scan.root}", layout=scan.layout, root=scan.root, rows=[], classes=[])
    for split, by_class in scan.splits.items():
        for cls, paths in by_class.items():
            listing.rows += [Row(p, cls, split) for p in paths]
    listing.hidden, listing.stray = scan.hidden, scan.stray
    stray = set(scan.stray)
    listing.not_read = [s.to_dict() for s in scan.skipped if s.path not in stray]
    train = scan.splits.get("train", {})
    listing.classes = sorted(train)
    where = scan.root if scan.layout == "flat" else scan.root / "train"
    if not train:
        listing.fatal.append(f"no class folders in {where}; {LAYOUT_HELP}")
    elif len(train) == 1:
        listing.fatal.append(f"only one class ({listing.classes[0]!r}) in {where}; a classifier needs at least two")
    return listing


def _list_csv(path: str) -> Listing:
    listed = read_csv_source(path)
    rows = [Row(p, listed.classes[y], s) for p, y, s in zip(listed.paths, listed.labels, listed.splits)]
    return Listing(source=f"csv:{Path(path).expanduser().resolve()}", layout="csv", root=listed.root, rows=rows,
                   classes=listed.classes, unreadable=[s.to_dict() for s in listed.skipped])


def list_source(data: str, follow_links: bool = False) -> Listing:
    """The files of a folder or label CSV; DataError when the path does not exist."""
    if is_csv_source(data):
        return _list_csv(data)
    root = Path(data).expanduser()
    if not root.exists():
        raise DataError(f"{data!r} does not exist; give an image folder or a label CSV; {LAYOUT_HELP}")
    return _list_folder(root, follow_links)


def _class_table(listing: Listing, facts: dict[str, dict]) -> dict:
    table: dict[str, dict[str, dict[str, int]]] = {}
    for r in listing.rows:
        entry = table.setdefault(r.split, {}).setdefault(r.label, {"files": 0, "readable": 0})
        entry["files"] += 1
        entry["readable"] += facts[r.path].get("error") is None
    return table


def _class_findings(listing: Listing, table: dict, fatal: list[str], warnings: list[str]) -> dict:
    train = table.get("train", {})
    for cls in listing.classes:
        if train.get(cls, {}).get("readable", 0) == 0:
            fatal.append(f"class {cls!r} has no readable image")
    counts = {c: train.get(c, {}).get("readable", 0) for c in listing.classes}
    few = sorted(c for c, n in counts.items() if 0 < n < MIN_PER_CLASS)
    if few:
        warnings.append(f"{len(few)} class(es) with fewer than {MIN_PER_CLASS} readable images: {', '.join(few)}")
    positive = {c: n for c, n in counts.items() if n > 0}
    out = {"few_images": few, "imbalance": None}
    if len(positive) >= 2:
        big, small = max(positive, key=positive.get), min(positive, key=positive.get)
        ratio = positive[big] / positive[small]
        out["imbalance"] = {"ratio": round(ratio, 2), "largest": big, "smallest": small}
        if ratio >= IMBALANCE_WARN:
            warnings.append(f"class imbalance: {big!r} has {ratio:.1f}x the images of {small!r} "
                            "(train balances classes with --balance auto)")
    return out


def _image_summary(paths: list[str], facts: dict[str, dict]) -> dict:
    good = [facts[p] for p in paths if facts[p].get("error") is None]
    w = np.asarray([f["width"] for f in good] or [0])
    h = np.asarray([f["height"] for f in good] or [0])
    tiny = [p for p in paths if facts[p].get("error") is None and min(facts[p]["width"], facts[p]["height"]) < TINY_PX]
    aspect = [p for p in paths if facts[p].get("error") is None
              and max(facts[p]["width"], facts[p]["height"]) > ASPECT_MAX * min(facts[p]["width"], facts[p]["height"])]
    return {
        "width": {"min": int(w.min()), "median": float(np.median(w)), "max": int(w.max())},
        "height": {"min": int(h.min()), "median": float(np.median(h)), "max": int(h.max())},
        "smallest": _extreme(paths, facts, min), "largest": _extreme(paths, facts, max),  # real images, by pixels
        "modes": dict(Counter(f.get("mode", "?") for f in good).most_common()),
        "formats": dict(Counter(f.get("format", "?") for f in good).most_common()),
        "exif_rotated": sum(bool(f.get("exif_rotated")) for f in good),
        "animated": sum(f.get("frames", 1) > 1 for f in good),
        "tiny": tiny, "extreme_aspect": aspect,
    }


def _extreme(paths: list[str], facts: dict[str, dict], pick) -> dict | None:
    """{"width", "height", "path"} of the readable image with the fewest (pick=min) or most (max) pixels."""
    good = [p for p in paths if facts[p].get("error") is None]
    if not good:
        return None
    p = pick(good, key=lambda q: (facts[q]["width"] * facts[q]["height"], q))
    return {"width": int(facts[p]["width"]), "height": int(facts[p]["height"]), "path": p}


def _kind(members: list[Row]) -> str:
    if len({m.label for m in members}) > 1:
        return "across classes"
    if len({m.split for m in members}) > 1:
        return "across splits"
    return "within class"


def _duplicates(rows: list[Row], facts: dict[str, dict]) -> tuple[dict, dict[str, int]]:
    """Exact (same SHA-256) and near (pHash) duplicate sets, each with its kind; and a cluster id per path."""
    good = [r for r in rows if facts[r.path].get("error") is None]
    by_sha: dict[str, list[int]] = {}
    for i, r in enumerate(good):
        by_sha.setdefault(facts[r.path]["sha256"], []).append(i)
    reps = [m[0] for m in by_sha.values() if facts[good[m[0]].path].get("phash")]  # distinct, non-flat content
    hashes = np.asarray([int(facts[good[i].path]["phash"], 16) for i in reps], dtype=np.uint64)
    colours = np.asarray([facts[good[i].path]["rgb"] for i in reps], dtype=np.int64).reshape(-1, 3)
    near = near_duplicate_pairs(hashes) if len(reps) > 1 else np.zeros((0, 3), np.int64)
    near = near[np.abs(colours[near[:, 0]] - colours[near[:, 1]]).sum(1) <= COLOUR_TOLERANCE]
    content = clusters(len(reps), near)
    exact_sets = [[good[i] for i in m] for m in by_sha.values() if len(m) > 1]
    near_groups: dict[int, list[int]] = {}
    for rep_pos, cid in enumerate(content):
        near_groups.setdefault(int(cid), []).append(rep_pos)
    near_sets = [[good[i] for rp in g for i in by_sha[facts[good[reps[rp]].path]["sha256"]]]
                 for g in near_groups.values() if len(g) > 1]
    merged = _merge_ids(exact_sets + near_sets)

    def describe(sets):
        return [{"kind": _kind(s), "files": [m.path for m in s], "labels": sorted({m.label for m in s})} for s in sets]

    return {"exact": describe(exact_sets), "near": describe(near_sets), "near_dup_bits": NEAR_DUP_BITS}, merged


def _merge_ids(sets: list[list[Row]]) -> dict[str, int]:
    """Cluster id per path where overlapping exact/near sets are merged into one id."""
    paths = sorted({m.path for s in sets for m in s})
    pos = {p: i for i, p in enumerate(paths)}
    pairs = [(pos[s[0].path], pos[m.path]) for s in sets for m in s[1:]]
    ids = clusters(len(paths), pairs)
    return {p: int(ids[pos[p]]) for p in paths}


def _split_groups(dup_ids: dict[str, int], files: int, warnings: list[str]) -> dict[str, int]:
    """The duplicate clusters small enough to keep on one side of the train/val split."""
    limit = max(SPLIT_GROUP_MIN, int(SPLIT_GROUP_SHARE * files))
    sizes = Counter(dup_ids.values())
    too_big = {c for c, k in sizes.items() if k > limit}
    if too_big:
        warnings.append(f"{len(too_big)} near-duplicate cluster(s) of more than {limit} images (often uniform "
                        "backgrounds rather than copies) are not kept on one side of the split")
    return {p: c for p, c in dup_ids.items() if c not in too_big}


def _dup_warnings(dups: dict, warnings: list[str]) -> None:
    for name, sets in (("exact duplicate", dups["exact"]), ("near-duplicate", dups["near"])):
        kinds = Counter(s["kind"] for s in sets)
        if kinds.get("across classes"):
            warnings.append(f"{kinds['across classes']} {name} set(s) across classes (conflicting labels)")
        if kinds.get("across splits"):
            warnings.append(f"{kinds['across splits']} {name} set(s) across train/val/test (leakage)")
        if kinds.get("within class"):
            warnings.append(f"{kinds['within class']} {name} set(s) within a class (kept on one side of the split)")


def run_check(data: str, *, progress: bool = False, workers: int | None = None,
              follow_links: bool = False) -> CheckResult:
    """Check a folder or label CSV (never modifies it); cached per file. Raises DataError for a missing path.

    follow_links: follow symbolic links that lead outside the folder (skipped and listed otherwise).
    """
    t0 = time.perf_counter()
    listing = list_source(str(data), follow_links)
    paths = [r.path for r in listing.rows]
    facts, computed = file_facts_many(listing.root, paths, progress=progress, workers=workers)
    fatal, warnings = list(listing.fatal), []
    table = _class_table(listing, facts)
    classes = _class_findings(listing, table, fatal, warnings) if not listing.fatal else {"few_images": []}
    unreadable = listing.unreadable + [{"path": p, "reason": facts[p]["error"]} for p in paths if facts[p].get("error")]
    if unreadable:
        warnings.append(f"{len(unreadable)} unreadable file(s) (skipped by train)")
    dups, dup_ids = _duplicates(listing.rows, facts)
    _dup_warnings(dups, warnings)
    dup_ids = _split_groups(dup_ids, len(paths), warnings)
    images = _image_summary(paths, facts)
    for key, what in (("tiny", f"tiny image(s) (shorter side < {TINY_PX} px)"),
                      ("extreme_aspect", f"image(s) with aspect ratio beyond {ASPECT_MAX:g}:1")):
        if images[key]:
            warnings.append(f"{len(images[key])} {what}")
    if listing.hidden or listing.stray:
        warnings.append(f"{len(listing.hidden)} hidden and {len(listing.stray)} stray file(s) ignored")
    if listing.not_read:
        warnings.append(f"{len(listing.not_read)} link(s), special or oversized file(s) not read (see 'not read')")
    report = {"source": listing.source, "layout": listing.layout, "files": len(paths),
              "readable": len(paths) - sum(1 for p in paths if facts[p].get("error")), "classes": table,
              **classes, "unreadable": unreadable, "images": images, "hidden": listing.hidden, "stray": listing.stray,
              "not_read": listing.not_read, "duplicates": dups, "fatal": fatal, "warnings": warnings, "ok": not fatal,
              "seconds": round(time.perf_counter() - t0, 3), "computed": computed, "cached": len(paths) - computed}
    return CheckResult(report=report, fatal=fatal, warnings=warnings, dup_ids=dup_ids)
