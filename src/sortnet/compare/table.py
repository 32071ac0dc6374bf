"""Comparison tables (ladder rungs, learning-curve points): printed as text, written as CSV and JSON.

Usage:
    print(format_table(rows))                        # rows: list of flat dicts, same keys in each or not
    files = write_table(rows, out_dir, "ladder")     # {"csv": out/ladder.csv, "json": out/ladder.json}
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from sortnet.atomic import atomic_write_text

# column -> (header, format) for the text table; columns not listed are left to CSV/JSON
TEXT_COLUMNS = {
    "rung": ("rung", "{}"), "model": ("model", "{}"), "fraction": ("fraction", "{:.0%}"),
    "train_images": ("train imgs", "{:,}"), "img_size": ("px", "{}"), "seed": ("seed", "{}"),
    "accuracy": ("accuracy", "{:.4f}"), "macro_f1": ("macro F1", "{:.4f}"),
    "accuracy_mean": ("accuracy (mean)", "{:.4f}"), "accuracy_std": ("± std", "{:.4f}"),
    "train_seconds": ("train s", "{:.1f}"), "wall_seconds": ("wall s", "{:.1f}"),
    "parameters": ("params", "{:,}"), "predict_latency_ms": ("1-img ms", "{:.2f}"), "file_mb": ("file MB", "{:.2f}"),
}


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def format_table(rows: list[dict]) -> str:
    """Aligned text: the known columns present in any row, then each row's status when it is not ok."""
    cols = [c for c in TEXT_COLUMNS if any(c in r for r in rows)]
    cells = [[TEXT_COLUMNS[c][0] for c in cols]]
    cells += [[_cell(r.get(c), TEXT_COLUMNS[c][1]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = []
    for n, row in enumerate(cells):
        line = "  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
        status = rows[n - 1].get("status") if n else None
        lines.append(line.rstrip() + (f"  ({status})" if status and status != "ok" else ""))
    return "\n".join(lines)


def write_table(rows: list[dict], out: Path, stem: str) -> dict[str, Path]:
    """out/<stem>.csv (every key of every row, in first-seen order) and out/<stem>.json."""
    out = Path(out)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="")
    writer.writeheader()
    writer.writerows(rows)
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_text(json_path, json.dumps(rows, indent=2, default=str))
    return {"csv": csv_path, "json": json_path}
