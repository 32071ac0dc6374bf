"""Human-readable text for a `sortnet check` report (the dict made by sortnet.data.check.run_check).

Usage:
    from sortnet.data.check_report import format_report, brief_lines
    print(format_report(result.report))           # full report (sortnet check)
    for line in brief_lines(result.report): ...   # a few lines (start of sortnet train)
"""
from __future__ import annotations

from sortnet.textsafe import terminal_safe

SHOW = 10  # items of each list shown in text; --json has them all


def _more(items: list, show: int = SHOW) -> tuple[list, str]:
    rest = len(items) - show
    return items[:show], (f"    ... and {rest} more (--json lists all)" if rest > 0 else "")


def _section(lines: list[str], title: str, items: list[str]) -> None:
    if not items:
        return
    lines.append(f"{title} ({len(items)}):")
    shown, more = _more(items)
    lines += [f"  {x}" for x in shown] + ([more] if more else [])


def _classes(r: dict, lines: list[str]) -> None:
    few = set(r.get("few_images", []))
    for split, table in r["classes"].items():
        lines.append(f"classes ({split}):")
        width = max(len(c) for c in table)
        for cls in sorted(table):
            e = table[cls]
            bad = e["files"] - e["readable"]
            flag = "  ! too few" if cls in few and split == "train" else ""
            flag += "  ! none readable" if e["readable"] == 0 else ""
            lines.append(f"  {cls:<{width}}  {e['readable']:>7,}" + (f"  ({bad} unreadable)" if bad else "") + flag)
    imb = r.get("imbalance")
    if imb:
        lines.append(f"  imbalance: largest/smallest = {imb['ratio']:g} ({imb['largest']} / {imb['smallest']})")


def _images(r: dict, lines: list[str]) -> None:
    im = r["images"]
    if not r["readable"]:
        return
    w, h = im["width"], im["height"]
    small, large = im.get("smallest"), im.get("largest")
    if small and large:  # two real images (the per-side minima and maxima may belong to none)
        lines.append(f"sizes: {small['width']}x{small['height']} .. {large['width']}x{large['height']} px (smallest "
                     f"and largest image; median width x height {w['median']:g}x{h['median']:g})")
    else:
        lines.append(f"sizes: {w['min']}x{h['min']} .. {w['max']}x{h['max']} px (median {w['median']:g}x{h['median']:g})")
    lines.append("modes: " + ", ".join(f"{k} {v:,}" for k, v in im["modes"].items())
                 + "; formats: " + ", ".join(f"{k} {v:,}" for k, v in im["formats"].items()))
    lines.append(f"EXIF-rotated: {im['exif_rotated']:,}; animated (first frame used): {im['animated']:,}")
    _section(lines, "tiny images", im["tiny"])
    _section(lines, "extreme aspect ratios", im["extreme_aspect"])


def _dups(r: dict, lines: list[str]) -> None:
    d = r["duplicates"]
    for name, sets in (("exact duplicates (same bytes)", d["exact"]),
                       (f"near-duplicates (pHash within {d['near_dup_bits']} of 64 bits)", d["near"])):
        _section(lines, name, [f"[{s['kind']}] " + " = ".join(s["files"][:4])
                               + (f" (+{len(s['files']) - 4})" if len(s["files"]) > 4 else "") for s in sets])


def format_report(r: dict) -> str:
    """The full multi-line report."""
    lines = [f"sortnet check: {r['source']} ({r['layout']})",
             f"files: {r['files']:,} image files, {r['readable']:,} readable  "
             f"[{r['computed']:,} checked, {r['cached']:,} from cache, {r['seconds']:.1f}s]"]
    if r["classes"]:
        _classes(r, lines)
    _section(lines, "unreadable files", [f"{u['path']}: {u['reason']}" for u in r["unreadable"]])
    _images(r, lines)
    _section(lines, "hidden files (ignored)", r["hidden"])
    _section(lines, "stray files outside class folders or without an image extension (ignored)", r["stray"])
    _section(lines, "not read (links, special or oversized files)",
             [f"{u['path']}: {u['reason']}" for u in r.get("not_read", [])])
    _dups(r, lines)
    if r["fatal"]:
        lines += ["FATAL:"] + [f"  {m}" for m in r["fatal"]]
    elif r["warnings"]:
        lines += [f"OK with {len(r['warnings'])} warning(s):"] + [f"  {m}" for m in r["warnings"]]
    else:
        lines.append("OK: no problems found")
    return "\n".join(terminal_safe(line) for line in lines)  # class names and paths come from the disk


def brief_lines(r: dict) -> list[str]:
    """A few lines for the start of training: the warnings and fatal problems, nothing else."""
    head = f"check: {r['files']:,} files, {r['readable']:,} readable ({r['seconds']:.1f}s"
    head += ", cached)" if not r["computed"] else f", {r['computed']:,} checked)"
    return [head] + [terminal_safe(f"  ! {m}") for m in r["fatal"] + r["warnings"]]
