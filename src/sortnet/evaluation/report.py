"""Human-readable evaluation report: headline numbers, per-class table, confusion matrix.

Usage:
    print(format_report(metrics, title="fashion-mnist test split"))
"""
from __future__ import annotations

from sortnet.textsafe import terminal_safe


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def format_confusion(cm: list[list[int]], classes: list[str], max_classes: int = 30) -> str:
    if len(classes) > max_classes:
        return f"(confusion matrix omitted for {len(classes)} classes; see --json)"
    width = max(5, max(len(str(v)) for row in cm for v in row) + 1)
    label_w = min(14, max(len(c) for c in classes))
    header = " " * (label_w + 2) + "".join(f"{i:>{width}}" for i in range(len(classes)))
    lines = ["confusion matrix (rows: true class, columns: predicted class index)", header]
    for i, (c, row) in enumerate(zip(classes, cm)):
        lines.append(f"{_short(c, label_w):>{label_w}} {i:>1}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def format_report(m: dict, title: str = "") -> str:
    lines = [f"== {title} ==" if title else "== evaluation =="]
    lines.append(f"images        {m['num_images']}")
    lines.append(f"accuracy      {m['accuracy']:.4f}")
    if "top5_accuracy" in m:
        lines.append(f"top-5         {m['top5_accuracy']:.4f}")
    lines.append(f"macro F1      {m['macro_f1']:.4f}")
    lines.append("")
    w = min(24, max(8, max(len(c) for c in m["classes"])))
    lines.append(f"{'class':<{w}} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
    for c, s in m["per_class"].items():
        lines.append(f"{_short(c, w):<{w}} {s['precision']:>9.4f} {s['recall']:>7.4f} {s['f1']:>7.4f} {s['support']:>8}")
    lines.append("")
    lines.extend(format_confusion(m["confusion_matrix"], m["classes"]).split("\n"))  # one line each, escaped alone
    return "\n".join(terminal_safe(line) for line in lines)  # class names are folder names: no escapes reach the tty
