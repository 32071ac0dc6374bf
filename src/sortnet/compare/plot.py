"""Pictures of comparisons (matplotlib, Agg: no display needed): the ladder and the learning curve.

matplotlib is optional (`pip install 'sortnet[plot]'`); without it the functions return None and say so.

Usage:
    path = plot_ladder(rows, "out/ladder.png")        # accuracy vs training time and vs latency
    path = plot_curve(points, "out/curve.png")        # accuracy vs training-set size (log2 axis)
"""
from __future__ import annotations

import io
import math
from pathlib import Path

from sortnet.atomic import atomic_write_bytes


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        print("plot skipped: matplotlib is not installed (pip install 'sortnet[plot]')", flush=True)
        return None
    matplotlib.use("Agg")  # files only; never opens a window
    import matplotlib.pyplot as plt

    return plt


def _log_axis(ax, base: float = 10) -> None:
    """Log x axis with plain numbers (0.5, 2, 100) instead of powers."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log", base=base)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.4g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.15)


def _ok(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok" and not math.isnan(r.get("accuracy", math.nan))]


def plot_ladder(rows: list[dict], path: str | Path, title: str = "ladder") -> Path | None:
    """Two panels: accuracy vs training seconds, and accuracy vs 1-image CPU latency (log x axes)."""
    plt = _pyplot()
    rows = _ok(rows)
    if plt is None or not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, key, label in ((axes[0], "train_seconds", "training time (s)"),
                           (axes[1], "predict_latency_ms", "1-image CPU latency (ms)")):
        xs = [max(r[key], 1e-3) for r in rows]
        ys = [100 * r["accuracy"] for r in rows]
        ax.scatter(xs, ys, zorder=2)
        for x, y, r in zip(xs, ys, rows):
            name = r["rung"] if r["rung"] == r["model"] else f"{r['rung']} ({r['model']})"
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, -3), fontsize=8)
        _log_axis(ax)
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    _save(fig, path)
    plt.close(fig)
    return Path(path)


def plot_curve(points: list[dict], path: str | Path, title: str = "learning curve") -> Path | None:
    """Mean accuracy (with each seed as a dot) against training images, log2 x axis."""
    plt = _pyplot()
    if plt is None or not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    xs = [p["train_images"] for p in points]
    ax.plot(xs, [100 * p["accuracy_mean"] for p in points], "o-", label="mean over seeds")
    for p in points:
        ax.scatter([p["train_images"]] * len(p["accuracies"]), [100 * a for a in p["accuracies"]], color="0.5", s=12)
    _log_axis(ax, base=2)
    ax.set_xlabel("training images")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title)
    _save(fig, path)
    plt.close(fig)
    return Path(path)


def _save(fig, path: str | Path) -> None:
    """The figure as a PNG, written atomically (never through a link or onto a device)."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    atomic_write_bytes(Path(path), buf.getvalue())
