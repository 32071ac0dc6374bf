"""Charts for the report (matplotlib object API, Agg canvas): training curves, reliability diagram, confusion matrix.

Usage:
    png = curves_png(history)                       # history: metrics.json's per-epoch list
    png = reliability_png(reliability_bins(y, probs))
    png = confusion_png(cm, classes, normalized=True)
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from sortnet.calibrate import ReliabilityBins
from sortnet.reporting.galleries import figure_png

TRAIN_COLOUR, VAL_COLOUR = "#1f77b4", "#d62728"


# (train keys, validation keys) per panel; the first name of each is today's (Keras-style) history key,
# the others those of run folders written before the callbacks API
PANELS = [("loss", ("loss", "train_loss"), ("val_loss",)),
          ("accuracy", ("accuracy", "train_acc"), ("val_accuracy", "val_acc")),
          ("learning rate", ("lr",), ())]


def history_series(history: list[dict], keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of the first of `keys` each epoch has (epochs numbered from 1)."""
    rows = []
    for i, h in enumerate(history):
        value = next((h[k] for k in keys if h.get(k) is not None), None)
        if value is not None:
            rows.append((h.get("epoch", i + 1), value))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def curves_png(history: list[dict]) -> bytes | None:
    """Loss, accuracy and learning rate per epoch, train and validation; None without history."""
    if not history:
        return None
    fig = Figure(figsize=(11, 3.2))
    marker = "o" if len(history) <= 20 else None
    for i, (name, train_keys, val_keys) in enumerate(PANELS):
        ax = fig.add_subplot(1, 3, i + 1)
        for keys, label, colour in ((train_keys, "train", TRAIN_COLOUR), (val_keys, "validation", VAL_COLOUR)):
            x, y = history_series(history, keys)
            if len(x):
                ax.plot(x, y, marker=marker, ms=3, color=colour, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if i < 2:
            ax.legend(fontsize=8)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    fig.tight_layout()
    return figure_png(fig)


def reliability_png(bins: ReliabilityBins) -> bytes:
    """Accuracy per confidence bin against the diagonal (perfect calibration), with the bin counts below."""
    fig = Figure(figsize=(5, 5.2))
    ax, hist = fig.add_subplot(4, 1, (1, 3)), fig.add_subplot(4, 1, 4)
    centers = (bins.edges[:-1] + bins.edges[1:]) / 2
    width = bins.edges[1] - bins.edges[0]
    used = bins.count > 0
    ax.bar(centers[used], bins.accuracy[used], width=width * 0.95, color=TRAIN_COLOUR, label="accuracy in bin")
    ax.plot(centers[used], bins.confidence[used], "_", color=VAL_COLOUR, ms=14, mew=2.5,
            label="mean confidence in bin")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability diagram (ECE {bins.ece:.4f})")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xticklabels([])
    hist.bar(centers, bins.count, width=width * 0.95, color="#777")
    hist.set_xlim(0, 1)
    hist.set_yscale("log" if bins.count.max(initial=0) > 100 else "linear")
    hist.set_xlabel("confidence (top-1 probability)")
    hist.set_ylabel("images")
    fig.tight_layout()
    return figure_png(fig)


def confusion_png(cm: np.ndarray, classes: list[str], normalized: bool) -> bytes:
    """Rows: true class, columns: predicted class; counts, or each row divided by its total."""
    cm = np.asarray(cm, dtype=np.float64)
    k = len(classes)
    values = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalized else cm
    side = float(np.clip(2.5 + 0.45 * k, 5, 18))
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalized else max(values.max(), 1))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    font = 9 if k <= 12 else max(4, 9 - k // 12)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(classes, rotation=60, ha="right", fontsize=font)
    ax.set_yticklabels(classes, fontsize=font)
    for label in ax.get_xticklabels() + ax.get_yticklabels():
        label.set_parse_math(False)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("confusion matrix, row-normalized" if normalized else "confusion matrix, counts")
    if k <= 20:
        threshold = values.max() / 2
        for i in range(k):
            for j in range(k):
                text = f"{values[i, j]:.2f}" if normalized else f"{int(values[i, j])}"
                if normalized and values[i, j] == 0:
                    text = "0"
                ax.text(j, i, text, ha="center", va="center", fontsize=max(5, font - 1),
                        color="white" if values[i, j] > threshold else "black")
    fig.tight_layout()
    return figure_png(fig)
