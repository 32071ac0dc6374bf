"""Make the report: inputs -> sections -> DIR/report.html (self-contained) + DIR/report_images/*.png.

Usage:
    result = write_report(inputs, "runs/fm", ReportOptions(dream_seconds=5))
    result.path, result.html_bytes, result.seconds, result.step_seconds   # seconds per section
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path


from sortnet.atomic import atomic_write_bytes, atomic_write_text
from sortnet.progress import progress
from sortnet.version import __version__
from sortnet.reporting.layout import IMAGES_DIR, REPORT_FILE
from sortnet.reporting import sections as sec
from sortnet.reporting.collect import ReportInputs
from sortnet.reporting.html import Section, render_page
from sortnet.reporting.learned import learned_section
from sortnet.reporting.unknown import unknown_section
from sortnet.reporting.scores import report_scores
from sortnet.reporting.summary import data_summary, model_summary, training_summary
from sortnet.runfolder.record import read_run_records

TENSORBOARD_TAGS = {"curves": "report/curves", "confusion_counts": "report/confusion_matrix",
                    "confusion_normalized": "report/confusion_matrix_normalized"}


@dataclass
class ReportOptions:
    top_losses: int = 16  # images in the top-losses gallery
    samples_per_class: int = 3  # correct and wrong images per class in the samples grid
    dream_steps: int = 200  # optimizer steps for the class dreams (0 = no dreams)
    dream_seconds: float = 10.0  # time bound for the dreams
    seed: int = 0
    check: bool = True  # run the (cached) data check on folders for the summary
    unknown_examples: str | None = None  # a folder of images of none of the classes, scored in section 8
    progress: bool = True
    suspects: str | None = None  # a suspects.csv (sortnet check --labels): adds the "Possibly mislabelled" gallery
    suspects_shown: int = 24  # suspects drawn in that gallery

    def __post_init__(self) -> None:
        from sortnet.reporting.collect import ReportError

        for name in ("top_losses", "samples_per_class", "dream_steps", "dream_seconds", "suspects_shown"):
            if getattr(self, name) < 0:
                raise ReportError(f"{name} must be >= 0 (0 turns that part off), got {getattr(self, name)}")


@dataclass
class ReportResult:
    path: Path
    html_bytes: int
    seconds: float  # all of it: loading and predicting (collect_seconds) + sections + writing
    collect_seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)
    scores: dict = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)


def _sections(inputs: ReportInputs, opts: ReportOptions, timer: dict, records: dict) -> tuple[list[Section], dict]:
    """The eight sections in order, each step timed into `timer` (seconds) under a progress bar."""
    prep = inputs.meta.preprocessing
    scores = report_scores(inputs.labels, inputs.probs, inputs.classes)
    training = training_summary(inputs.meta, records)

    def summary() -> Section:
        data = data_summary(inputs.data, inputs.labels, inputs.classes, inputs.skipped, check=opts.check,
                            progress=opts.progress, split=inputs.split)
        model = model_summary(inputs.model, inputs.meta, prep.img_size, prep.channels, inputs.model_path)
        return sec.summary_section(inputs, data, model, training)

    steps = [
        ("summary", summary),
        ("curves", lambda: sec.curves_section(training)),
        ("metrics", lambda: sec.metrics_section(inputs, scores)),
        ("confusion", lambda: sec.confusion_section(inputs, scores)),
        ("top losses", lambda: sec.top_losses_section(inputs, opts.top_losses)),
        ("learned", lambda: learned_section(inputs, dream_steps=opts.dream_steps, dream_seconds=opts.dream_seconds,
                                            seed=opts.seed, progress=opts.progress)),
        ("samples", lambda: sec.samples_section(inputs, opts.samples_per_class, opts.seed)),
        ("unknown", lambda: unknown_section(inputs, opts.unknown_examples)),
    ]
    if opts.suspects:
        from sortnet.reporting.mislabelled import mislabelled_section

        steps.append(("mislabelled", lambda: mislabelled_section(opts.suspects, inputs.data, opts.suspects_shown,
                                                                  number=9)))
    sections = []
    bar = progress(steps, desc="report", unit="section", enabled=opts.progress, leave=False)
    for name, make in bar:
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        sections.append(make())
        timer[name] = time.perf_counter() - t0
    return sections, scores


def _write_images(folder: Path, figures: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):  # our own folder: drop pictures of sections this model no longer has
        if stale.stem not in figures:
            stale.unlink()
    for name, png in figures.items():
        atomic_write_bytes(folder / f"{name}.png", png)


def write_report(inputs: ReportInputs, out_dir: str | Path, opts: ReportOptions | None = None,
                 tensorboard_dir: str | Path | None = None) -> ReportResult:
    """Write DIR/report.html and DIR/report_images/; optionally the curves and confusion matrix to TensorBoard."""
    opts = opts or ReportOptions()
    t0, timer = time.perf_counter(), {}
    records = read_run_records(inputs.run_dir)  # the run folder's run.json and metrics.json, read once
    sections, scores = _sections(inputs, opts, timer, records)
    figures = {f.name: f.png for s in sections for f in s.figures}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_images(out_dir / IMAGES_DIR, figures)  # the same PNGs as embedded, for slides and TensorBoard-less use
    where = str(inputs.model_path) if inputs.model_path else inputs.meta.arch
    made = datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M")
    subtitle = (f"{where} on {inputs.data} ({inputs.split or 'as given'}): accuracy {scores['accuracy']:.4f}. "
                f"Made by sortnet {__version__} on {made} in "
                f"{inputs.collect_seconds + time.perf_counter() - t0:.1f} s.")
    page = render_page(f"sortnet report: {Path(where).parent.name or where}", sections, subtitle)
    path = out_dir / REPORT_FILE
    atomic_write_text(path, page)
    if tensorboard_dir is not None:
        from sortnet.reporting.tensorboard import log_figures

        epochs = len(records["metrics"].get("history", [])) or 0
        log_figures(tensorboard_dir, {tag: figures[n] for n, tag in TENSORBOARD_TAGS.items() if n in figures}, epochs)
    total = inputs.collect_seconds + time.perf_counter() - t0
    return ReportResult(path, len(page.encode()), total, inputs.collect_seconds, timer, scores, figures)
