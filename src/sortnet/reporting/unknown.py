"""Report section "When it doesn't know": calibration before/after the temperature, and the unknown scores.

Shows the model file's temperature with the validation (and test) NLL/ECE before and after it, the reliability
diagram of the report's images without the temperature (the one in section 3 is with it), the distribution of
unknown scores of the report's images of known classes (and of negative examples from `--unknown-examples DIR`,
with the share rejected and the AUROC), the threshold, and the images whose scores are nearest the threshold.

Usage:
    section = unknown_section(inputs, unknown_examples="not-parts/")      # a reporting.html.Section
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure as MplFigure

from sortnet.calibrate import calibrated_probs
from sortnet.calibrate import reliability_bins
from sortnet.reporting.charts import TRAIN_COLOUR, VAL_COLOUR, reliability_png
from sortnet.reporting.collect import ReportInputs
from sortnet.reporting.galleries import captioned_grid, figure_png
from sortnet.reporting.html import Figure, Section, Table
from sortnet.reporting.pictures import thumbnails

NEAREST_SHOWN = 16  # images nearest the threshold in the gallery
MAX_EXAMPLES = 1000  # negative examples read from --unknown-examples


def negative_images(folder: str, meta) -> np.ndarray:
    """uint8 [N, C, S, S] of up to MAX_EXAMPLES readable images under folder, preprocessed as the model's."""
    from sortnet.data.decode import decode_or_reason
    from sortnet.data.preprocess import image_to_array
    from sortnet.infer.predictor import expand_paths
    from sortnet.reporting.collect import ReportError

    files, _ = expand_paths([folder])
    arrays = [a for a, _ in (decode_or_reason(f, convert=lambda img: image_to_array(img, meta.preprocessing))
                             for f in files[:MAX_EXAMPLES]) if a is not None]
    if not arrays:
        raise ReportError(f"--unknown-examples {folder}: no readable images there")
    return np.stack(arrays)


def image_scores(model, meta, images: np.ndarray) -> np.ndarray:
    from sortnet.unknown.fit import features_and_logits, unknown_scores

    feats, logits = features_and_logits(model, images, "cpu", tta=meta.tta)
    return unknown_scores(model.unknown, feats, logits)


def _histogram_png(known: np.ndarray, negatives: np.ndarray | None, threshold: float) -> bytes:
    fig = MplFigure(figsize=(7, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    every = known if negatives is None else np.concatenate([known, negatives])
    bins = np.linspace(every.min(), every.max() + 1e-9, 41)
    ax.hist(known, bins=bins, alpha=0.7, color=TRAIN_COLOUR, label=f"images of known classes ({len(known)})")
    if negatives is not None:
        ax.hist(negatives, bins=bins, alpha=0.6, color=VAL_COLOUR, label=f"unknown examples ({len(negatives)})")
    ax.axvline(threshold, color="k", ls="--", lw=1.2, label=f"threshold {threshold:.4g}")
    ax.set_xlabel("unknown_score (higher = less like the known classes)")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def _calibration_part(s: Section, inputs: ReportInputs) -> None:
    cal = inputs.meta.calibration
    if not cal:
        s.paragraphs.append("No temperature in this model file (trained before sortnet calibrated, or without "
                            "validation images): probabilities are the plain softmax.")
        return
    t = cal["temperature"]

    def change(key: str) -> str:
        before, after = cal.get(f"{key}_before"), cal.get(f"{key}_after")
        return "" if before is None or after is None else f"{before:.4f} → {after:.4f}"

    rows = [["validation (fitted on)", cal.get("images", ""), change("nll"), change("ece")]]
    if "test_ece_before" in cal:
        rows.append(["test", "", "", change("test_ece")])
    before = calibrated_probs(np.log(np.clip(inputs.probs, 1e-30, 1)) * t)  # softmax(T log p) undoes the temperature
    rows.append([f"this report's images ({inputs.split or 'as given'})", len(inputs.labels), "",
                 f"{reliability_bins(inputs.labels, before).ece:.4f} → "
                 f"{reliability_bins(inputs.labels, inputs.probs).ece:.4f}"])
    s.paragraphs.append(f"Temperature T = {t:.4g} (fitted on the validation split by log-likelihood): every "
                        f"probability sortnet shows is softmax(logits / T). T > 1 softens an over-confident model; "
                        f"the top class, and so the accuracy, never changes.")
    s.tables.append(Table(["images", "count", "NLL before → after", "ECE (15 bins) before → after"], rows))
    s.figures.append(Figure("reliability_before", reliability_png(reliability_bins(inputs.labels, before)),
                            "Reliability diagram of the same images without the temperature (section 3 shows it "
                            "with)."))


def unknown_section(inputs: ReportInputs, unknown_examples: str | None = None) -> Section:
    s = Section("unknown", "8. When it doesn't know: calibration and unknown images")
    _calibration_part(s, inputs)
    spec = inputs.meta.unknown
    if spec is None or getattr(inputs.model, "unknown", None) is None:
        s.paragraphs.append("This model has no unknown scorer (an older file, an ensemble, or --unknown-method "
                            "none): it answers one of its classes for every image.")
        return s
    threshold = float(spec["threshold"])
    with torch.no_grad():
        known = image_scores(inputs.model, inputs.meta, inputs.images)
    negatives = None
    if unknown_examples:
        with torch.no_grad():
            negatives = image_scores(inputs.model, inputs.meta, negative_images(unknown_examples, inputs.meta))
    rows = {"method": spec["method"], "threshold": f"{threshold:.4g}",
            "set on": f"{spec.get('val_images', '?')} validation images, accepting {spec.get('accept', 0.95):.0%}",
            "answered unknown here": f"{(known > threshold).mean():.1%} of {len(known)} images of known classes"}
    if negatives is not None:
        from sklearn.metrics import roc_auc_score

        y = np.r_[np.zeros(len(known)), np.ones(len(negatives))]
        rows["unknown examples rejected"] = f"{(negatives > threshold).mean():.1%} of {len(negatives)}"
        rows["AUROC known vs unknown examples"] = f"{roc_auc_score(y, np.r_[known, negatives]):.4f}"
    s.tables.append(Table(["", ""], [[k, str(v)] for k, v in rows.items()], numeric=False))
    s.figures.append(Figure("unknown_scores", _histogram_png(known, negatives, threshold),
                            "unknown_score of each image; above the dashed threshold sortnet answers "
                            "'unknown (closest: X)'."))
    nearest = np.argsort(np.abs(known - threshold), kind="stable")[:NEAREST_SHOWN]
    nearest = nearest[np.argsort(known[nearest])]
    classes = inputs.classes
    captions = [f"{'unknown' if known[i] > threshold else 'accepted'} {known[i]:.3g}\n"
                f"{classes[inputs.predicted[i]]}" for i in nearest]
    s.figures.append(Figure("unknown_nearest", captioned_grid(thumbnails(inputs.images[nearest]), captions, 8),
                            "The images whose scores are nearest the threshold (lowest first): where the line "
                            "between 'one of the classes' and 'none of these' falls."))
    s.note = (f"Move the threshold without retraining: `sortnet predict/serve MODEL --unknown-accept 0.99` (share of "
              f"validation images accepted) or `--unknown-threshold {threshold:.3g}`.")
    return s

