"""`sortnet report MODEL DATA`: one self-contained HTML page of what a model learned and where it fails.

Sections: summary (data, model size and FLOPs, training), training curves, metrics and calibration,
confusion matrix, top losses with Grad-CAM, what the model learned (weight pictures, first-layer filters,
class dreams), sample predictions. Written to DIR/report.html with the PNGs in DIR/report_images/.
Importing this package is cheap (matplotlib and torch load when a report is made). It is called
`reporting` so that `sortnet.report(...)`, the function, is not shadowed by a subpackage of that name.

Usage:
    from sortnet.reporting import report                                  # = sortnet.report
    path = report("runs/fm/model.safetensors", "fashion-mnist")          # runs/fm/report.html
    path = report(clf, "photos/", out="reports/photos", dream_seconds=5)
"""
from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

from sortnet.reporting.layout import IMAGES_DIR, REPORT_FILE, report_path_for

__all__ = ["report", "make_report", "report_path_for", "REPORT_FILE", "IMAGES_DIR", "ReportOptions",
           "ReportResult", "ReportInputs", "ReportError"]


def make_report(model, data: str, out: str | Path | None = None, *, device: str = "cpu", tta: bool = True,
                runtime: str = "auto", data_root: str | None = None, download: bool = True,
                **options):
    """Like report(), returning the ReportResult (path, HTML size, seconds per step, scores, figures)."""
    from sortnet.reporting.build import ReportOptions, write_report
    from sortnet.reporting.collect import ReportError, collect

    known = {f.name for f in fields(ReportOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ReportError(f"unknown report option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    opts = ReportOptions(**options)
    t0 = time.perf_counter()
    inputs = collect(model, data, device=device, tta=tta, runtime=runtime, data_root=data_root, download=download,
                     progress=opts.progress)
    inputs.collect_seconds = time.perf_counter() - t0
    if out is None:
        if inputs.model_path is None:
            raise ReportError("give out=DIR: this model has no file whose folder the report could go into")
        out = inputs.model_path.parent
    return write_report(inputs, out, opts)


def report(model, data: str, out: str | Path | None = None, **kwargs) -> Path:
    """Write OUT/report.html (default: beside the model file) for `model` on `data`'s evaluation images.

    model: a model file path, a Classifier or a torch Predictor. data: a folder or built-in dataset name
    (its test split). Options: see ReportOptions (top_losses, samples_per_class, dream_steps,
    dream_seconds, seed, check, progress) plus device, tta, runtime (auto | torch | onnx: which
    engine predicts the images), data_root, download.
    """
    return make_report(model, data, out, **kwargs).path


def __getattr__(name: str):
    if name in ("ReportOptions", "ReportResult"):
        from sortnet.reporting import build

        return getattr(build, name)
    if name in ("ReportInputs", "ReportError"):
        from sortnet.reporting import collect

        return getattr(collect, name)
    raise AttributeError(f"module 'sortnet.reporting' has no attribute {name!r}")
