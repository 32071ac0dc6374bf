"""The report after training inside a time budget: how long it takes, whether it fits, what it reserves.

A `--time-budget` covers the whole command, the report (RUN_DIR/report.html) included: the report is made only
where it is a small share of the budget; otherwise it is skipped and the command that makes it is printed.

Usage:
    reserve = report_reserve_seconds(cfg, run_dir)       # seconds kept after the model file
    if not report_skipped(cfg, run_dir, data): report_after_training(...)
"""
from __future__ import annotations

from pathlib import Path

from sortnet.config import TrainConfig
from sortnet.runfolder.layout import MODEL_FILE
from sortnet.textsafe import terminal_safe

# The report after training (RUN_DIR/report.html) beyond its dreams' time bound: figures, HTML, TensorBoard images
# (Fashion-MNIST, 10k test images, 2-core AVX2 machine otherwise idle: 10.4-12.5 s in all after a 60 s budget).
REPORT_OVERHEAD_SECONDS = 8.0
REPORT_MAX_SHARE = 0.1  # of a time budget, at most, for the report; else it is skipped (and says how to make it)


def report_seconds() -> float:
    """What the report after training (RUN_DIR/report.html) is expected to take on a 2-core CPU."""
    from sortnet.reporting.layout import AFTER_TRAINING_OPTIONS  # light: the report's code loads matplotlib

    return AFTER_TRAINING_OPTIONS["dream_seconds"] + REPORT_OVERHEAD_SECONDS


def report_fits(cfg: TrainConfig) -> bool:
    """A time budget is the whole command, the report included: it is made only where it is a small share."""
    return not cfg.time_budget or report_seconds() <= REPORT_MAX_SHARE * cfg.time_budget


def report_reserve_seconds(cfg: TrainConfig, run_dir: Path | None) -> float:
    """Seconds of a whole-command budget kept for the report after the model file."""
    return report_seconds() if run_dir is not None and cfg.report and report_fits(cfg) else 0.0


def report_skipped(cfg: TrainConfig, run_dir: Path, data: str) -> bool:
    if report_fits(cfg):
        return False
    if cfg.progress:
        print(terminal_safe(f"report: skipped, ~{report_seconds():.0f}s would not fit a {cfg.time_budget:g}s budget; "
                            f"make it with: sortnet report {run_dir / MODEL_FILE} {data}"), flush=True)
    return True
