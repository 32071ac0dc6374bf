"""The report written at the end of `sortnet train` (and `sortnet.fit(..., out=DIR)`): RUN_DIR/report.html.

Kept fast: it reuses the held-out probabilities the run has just computed for its metrics (no second
prediction pass), and dreams get a short time bound. TensorBoard gets the curves and confusion matrix as
images. A failure here never costs the trained model: the model file is already written, and the
message says how to make the report again.

Usage:
    report_after_training(result, bundle, run_dir / MODEL_FILE)   # result: finish_run's dict
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sortnet.reporting.build import ReportOptions, write_report
from sortnet.reporting.collect import ReportInputs
from sortnet.reporting.layout import AFTER_TRAINING_OPTIONS
from sortnet.runfolder.layout import TENSORBOARD_DIR


def _held_out(result: dict, bundle) -> tuple[str, object] | None:
    """("test", ImageSet) if the run had test images, else ("val", ...), else None."""
    for split in ("test", "val"):
        data_set = getattr(bundle, split, None)
        if data_set is not None and len(data_set) and split in result.get("probs", {}):
            return split, data_set
    return None


def report_after_training(result: dict, bundle, model_path: str | Path, progress: bool = True,
                          check: bool = True) -> Path | None:
    """Write report.html beside the run's model file; returns its path (None when there was nothing to report)."""
    from sortnet.modelfile import read_metadata

    model_path = Path(model_path)
    run_dir = model_path.parent
    held = _held_out(result, bundle)
    if held is None:
        if progress:
            print("report: skipped (no validation or test images to report on)", flush=True)
        return None
    split, data_set = held
    inputs = ReportInputs(result["model"].eval(), read_metadata(model_path), data_set.images,
                          np.asarray(data_set.labels, np.int64), np.asarray(result["probs"][split], np.float32),
                          data=str(bundle.data), split=f"{split} split", skipped=list(result.get("skipped", [])),
                          model_path=model_path, run_dir=run_dir)
    try:
        out = write_report(inputs, run_dir, ReportOptions(progress=progress, check=check, **AFTER_TRAINING_OPTIONS),
                           tensorboard_dir=run_dir / TENSORBOARD_DIR)
    except Exception as e:  # noqa: BLE001 - the model is saved; a report bug must not turn the run into an error
        print(f"report: failed ({type(e).__name__}: {e}); make it with: sortnet report {model_path} "
              f"{bundle.data}", file=sys.stderr, flush=True)  # shown even with --no-progress
        return None
    if progress:
        print(f"report: {out.path} ({out.html_bytes / 1e6:.1f} MB, {out.seconds:.1f} s)", flush=True)
    return out.path
