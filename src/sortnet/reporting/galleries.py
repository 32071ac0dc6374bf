"""Picture grids with captions (top losses, samples, weights, filters, dreams) drawn as one PNG each.

The tiles are pasted into one canvas and drawn with a single imshow (one Axes, not one per image), so a
grid of hundreds of thumbnails renders in a fraction of a second. matplotlib's object API with the Agg
canvas: no pyplot, no global backend switch. Captions are plain text (math parsing off: a class
name with '$' is shown as written).

Usage:
    png = captioned_grid(tiles, ["true: cat\\npred: dog 0.97", ...], cols=8, title="Top losses")
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
FONT_PT = 7.5
LINE_PX = 12  # one caption line at FONT_PT and DPI
GAP = 8
LABEL_PX = 120  # left margin for row labels
TITLE_PX = 26


def figure_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _short(text: str, width: int) -> str:
    return "\n".join(line if len(line) <= width else line[: width - 1] + "…" for line in text.split("\n"))


def captioned_grid(tiles: np.ndarray, captions: list[str] | None, cols: int, *, title: str | None = None,
                   row_labels: list[str] | None = None, caption_lines: int = 2) -> bytes:
    """PNG bytes of tiles float RGB [N, h, w, 3] in rows of `cols`, each with its caption underneath."""
    n, th, tw = len(tiles), tiles.shape[1], tiles.shape[2]
    rows = max(1, -(-n // cols)) if row_labels is None else len(row_labels)
    cap_px = LINE_PX * caption_lines + 4 if captions else 0
    left, top = (LABEL_PX if row_labels else 0), (TITLE_PX if title else 0)
    width = left + cols * (tw + GAP) + GAP
    height = top + rows * (th + cap_px + GAP) + GAP
    canvas = np.ones((height, width, 3), np.float32)
    origins = []
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = top + GAP + r * (th + cap_px + GAP), left + GAP + c * (tw + GAP)
        canvas[y : y + th, x : x + tw] = tiles[i]
        origins.append((y, x))
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    chars = max(8, int(tw / (FONT_PT * 0.62)))  # characters that fit under a tile
    for (y, x), text in zip(origins, captions or []):
        ax.text(x + tw / 2, y + th + 2, _short(text, chars), ha="center", va="top", fontsize=FONT_PT,
                parse_math=False, linespacing=1.1)
    for r, label in enumerate(row_labels or []):
        ax.text(left - 4, top + GAP + r * (th + cap_px + GAP) + th / 2, _short(label, 18), ha="right",
                va="center", fontsize=FONT_PT + 1, parse_math=False)
    if title:
        ax.text(GAP, TITLE_PX / 2 + 2, title, ha="left", va="center", fontsize=FONT_PT + 2, parse_math=False)
    return figure_png(fig)


def grid_rows(groups: list[np.ndarray], cols: int, tile_shape: tuple[int, int]) -> np.ndarray:
    """Rows of tiles padded with white to `cols` each: a ragged list of [n_i, h, w, 3] -> [rows * cols, h, w, 3]."""
    h, w = tile_shape
    out = np.ones((len(groups) * cols, h, w, 3), np.float32)
    for r, g in enumerate(groups):
        out[r * cols : r * cols + min(len(g), cols)] = g[:cols]
    return out
