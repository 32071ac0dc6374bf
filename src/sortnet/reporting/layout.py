"""Where a report goes: DIR/report.html, its PNGs in DIR/report_images/, and by default DIR = the model's folder.

Usage:
    from sortnet.reporting.layout import REPORT_FILE, report_path_for
    report_path_for("runs/fm/model.safetensors")      # runs/fm/report.html
"""
from __future__ import annotations

from pathlib import Path

from sortnet.runfolder.layout import REPORT_FILE  # noqa: F401 - re-exported: the report's own name for it

IMAGES_DIR = "report_images"
# the report written after training: fewer, time-bounded dreams than `sortnet report` (200 steps, 10 s)
AFTER_TRAINING_OPTIONS = {"dream_steps": 100, "dream_seconds": 3.0}


def report_path_for(model_path: str | Path) -> Path:
    """Where the report of a model file lives by default: report.html beside it."""
    return Path(model_path).parent / REPORT_FILE
