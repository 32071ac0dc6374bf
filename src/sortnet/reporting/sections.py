"""The seven report sections, each built from the collected inputs into text, tables and figures.

1 summary, 2 curves, 3 metrics + calibration, 4 confusion matrix, 5 top losses with Grad-CAM,
6 what the model learned (weights, filters, dreams), 7 sample predictions. The numbers come from
report/scores.py, pictures from charts.py and galleries.py.

Usage:
    sections = [summary_section(inputs, scores, info), curves_section(info["training"]), ...]
"""
from __future__ import annotations

import numpy as np

from sortnet.calibrate import reliability_bins
from sortnet.reporting.charts import confusion_png, curves_png, reliability_png
from sortnet.reporting.collect import ReportInputs
from sortnet.reporting.galleries import captioned_grid, grid_rows
from sortnet.reporting.gradcam import grad_cam
from sortnet.reporting.html import Figure, Section, Table
from sortnet.reporting.pictures import heat_overlay, thumbnails
from sortnet.reporting.selection import samples_per_class, top_losses

SAMPLE_CLASSES_SHOWN = 30  # sample grid rows; more classes would make an unreadably tall picture


def human(n: float | None, unit: str = "") -> str:
    """1234567 -> '1.23M'; None -> 'n/a'."""
    if n is None:
        return "n/a"
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.3g}{suffix}{unit}"
    return f"{n:g}{unit}" if isinstance(n, float) else f"{n}{unit}"


def _kv(rows: dict) -> Table:
    return Table(["", ""], [[k, "n/a" if v is None else str(v)] for k, v in rows.items()], numeric=False)


def summary_section(inputs: ReportInputs, data: dict, model: dict, training: dict) -> Section:
    s = Section("summary", "1. Summary")
    s.paragraphs.append(f"{data['images']:,} images of {data['source']} ({data['split'] or 'as given'}), "
                        f"{data['classes']} classes; model {model['arch']} with {human(model['parameters'])} "
                        f"parameters.")
    mb = model.get("file_bytes")
    s.tables.append(_kv({"model": model["arch"], "parameters": f"{model['parameters']:,} "
                         f"({model['trainable_parameters']:,} trainable)",
                         "FLOPs per image": f"{human(model['flops_per_image'])} (x{model['tta_views']} views "
                         f"with test-time augmentation)", "input": model["input"],
                         "model file": f"{model.get('file', 'n/a')} ({mb / 1e6:.2f} MB)" if mb else "n/a"}))
    recipe = training["recipe"]
    secs = training.get("seconds")
    head = training.get("head") or {}
    s.tables.append(_kv({"trained on": training.get("data"), "training time": f"{secs:.1f} s" if secs else None,
                         **({"head": _head_fit(head)} if training.get("head_only") and head else
                            {"epochs": training.get("epochs") or recipe.get("epochs")}),
                         **{k: v for k, v in recipe.items() if k != "model"}}))
    settings = {k: v for k, v in training["settings"].items() if v is not None}
    if settings:
        s.tables.append(_kv({f"--{k.replace('_', '-')}": v for k, v in settings.items()}))
    s.tables.append(_counts_table(data))
    check = data.get("check")
    s.items = list(check["warnings"] + check["fatal"]) if check else []
    s.items += [f"skipped {d['path']}: {d['reason']}" for d in data["skipped"]]
    s.note = ("Data check: " + (f"{check['readable']:,} of {check['files']:,} files readable; warnings listed above."
              if check else "not run (built-in dataset, or --no-check).")
              + " FLOPs counted with torch.utils.flop_counter on one image (2 per multiply-add).")
    return s


def _counts_table(data: dict) -> Table:
    check = data.get("check")
    splits = list(check["counts"]) if check else []
    headers = ["class", "evaluated"] + [f"{sp} (check)" for sp in splits]
    rows = [[c, n] + [check["counts"][sp].get(c, 0) for sp in splits] for c, n in data["per_class"].items()]
    return Table(headers, rows)


def curves_section(training: dict) -> Section:
    s = Section("curves", "2. Training curves")
    png = curves_png(training["history"])
    if png is None:
        s.paragraphs.append(_no_curves_reason(training))
        return s
    s.figures.append(Figure("curves", png, "Loss, accuracy and learning rate per epoch (train and validation)."))
    best = training.get("best") or {}
    acc = best.get("val_accuracy", best.get("val_acc"))
    if best.get("epoch", -1) > 0 and acc is not None:
        s.paragraphs.append(f"Best validation accuracy {acc:.4f} after epoch {best['epoch']}.")
    return s


def _head_fit(head: dict) -> str:
    """How a head-only run's linear head was fitted (transfer/head.py's info)."""
    parts = ["logistic regression on cached features"]
    if head.get("lambda") is not None:
        parts.append(f"L2 {head['lambda']:g} by 3-fold CV")
    if head.get("cv_accuracy") is not None:
        parts.append(f"held-out accuracy {head['cv_accuracy']:.3f}")
    return ", ".join(parts)


def _no_curves_reason(training: dict) -> str:
    if training.get("head_only"):
        return (f"No training curves: this run fitted only a linear head on the frozen body's cached features "
                f"({_head_fit(training.get('head') or {})}), in one solve rather than epochs.")
    if training.get("in_run_folder"):
        return ("No per-epoch history in the run folder's metrics.json (the run trained no epochs with the "
                "trainer, e.g. a head and last blocks fitted on cached activations).")
    return ("No per-epoch history: the model file is not inside its training run folder (metrics.json), so "
            "there are no curves to draw.")


def metrics_section(inputs: ReportInputs, scores: dict) -> Section:
    s = Section("metrics", "3. Metrics and calibration")
    head = {"images": f"{scores['num_images']:,}", "accuracy": f"{scores['accuracy']:.4f}"}
    if "top5_accuracy" in scores:
        head["top-5 accuracy"] = f"{scores['top5_accuracy']:.4f}"
    head.update({"macro F1": f"{scores['macro_f1']:.4f}", "balanced accuracy": f"{scores['balanced_accuracy']:.4f}",
                 "expected calibration error": f"{scores['ece']:.4f}"})
    s.tables.append(_kv(head))
    rows = [[c, f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}", v["support"]]
            for c, v in scores["per_class"].items()]
    s.tables.append(Table(["class", "precision", "recall", "F1", "support"], rows))
    bins = reliability_bins(inputs.labels, inputs.probs)
    s.figures.append(Figure("reliability", reliability_png(bins),
                            "Reliability diagram: accuracy of the images in each confidence bin; bars on the "
                            "diagonal mean the probabilities can be taken at face value."))
    s.note = ("Balanced accuracy is the mean of the per-class recalls; expected calibration error (15 equal-width "
              "bins) is the image-weighted mean gap between confidence and accuracy.")
    return s


def confusion_section(inputs: ReportInputs, scores: dict) -> Section:
    s = Section("confusion", "4. Confusion matrix")
    k = len(inputs.classes)
    cm = np.array(scores["confusion_matrix"], dtype=np.int64).reshape(k, k)
    s.figures.append(Figure("confusion_counts", confusion_png(cm, inputs.classes, normalized=False),
                            "Counts: rows are the true classes, columns the predicted ones."))
    s.figures.append(Figure("confusion_normalized", confusion_png(cm, inputs.classes, normalized=True),
                            "Each row divided by its total: the diagonal is each class's recall."))
    s.paragraphs.append("Most confused pairs (true class → predicted class):")
    s.items = [f"{p['true']} → {p['predicted']}: {p['count']} images ({100 * p['fraction_of_true']:.1f}% of "
               f"{p['true']})" for p in scores["confused_pairs"]] or ["none: every image is classified correctly"]
    return s


def top_losses_section(inputs: ReportInputs, count: int, cols: int = 8) -> Section:
    s = Section("top-losses", "5. Top losses")
    idx = top_losses(inputs.labels, inputs.probs, count)
    if len(idx) == 0:
        s.paragraphs.append("No misclassified images." if count > 0 else "Turned off (--top-losses 0).")
        return s
    classes, pred = inputs.classes, inputs.predicted[idx]
    cams = grad_cam(inputs.model, inputs.images[idx], pred)
    base = thumbnails(inputs.images[idx])
    tiles, captions = [], []
    for i, j in enumerate(idx):
        tiles += [base[i], heat_overlay(base[i : i + 1], cams[i : i + 1])[0]]
        p = inputs.probs[j, pred[i]]
        captions += [f"true: {classes[inputs.labels[j]]}\npred: {classes[pred[i]]}\np = {p:.2f}",
                     f"Grad-CAM\n{classes[pred[i]]}"]
    png = captioned_grid(np.stack(tiles), captions, cols=cols, caption_lines=3)
    s.figures.append(Figure("top_losses", png, "The most confidently wrong images, each followed by its Grad-CAM "
                                                "map for the predicted class (red: where the evidence for it is)."))
    s.note = "Ordered by loss, -log p(true class). Probabilities include test-time augmentation; Grad-CAM uses " \
             "the plain image."
    return s


def samples_section(inputs: ReportInputs, per_kind: int, seed: int) -> Section:
    s = Section("samples", "7. Sample predictions")
    if per_kind <= 0:
        s.paragraphs.append("Turned off (--samples 0).")
        return s
    picks = samples_per_class(inputs.labels, inputs.probs, per_kind, seed)
    shown = sorted(picks)[:SAMPLE_CLASSES_SHOWN]
    classes, cols = inputs.classes, 2 * per_kind
    size = thumbnails(inputs.images[:1]).shape[1]
    groups, captions = [], []
    for k in shown:
        right, wrong = picks[k]
        ids = np.concatenate([right, wrong]).astype(np.int64)
        groups.append(thumbnails(inputs.images[ids]) if len(ids) else np.ones((0, size, size, 3), np.float32))
        row = [f"✓ {inputs.probs[i, k]:.2f}" for i in right] + [""] * (per_kind - len(right))
        row += [f"✗ {classes[inputs.predicted[i]]}\n{inputs.probs[i, inputs.predicted[i]]:.2f}" for i in wrong]
        captions += row + [""] * (cols - len(row))
    tiles = grid_rows([np.concatenate([g[: len(picks[k][0])], _pad(per_kind - len(picks[k][0]), size),
                                       g[len(picks[k][0]):]]) for g, k in zip(groups, shown)], cols, (size, size))
    png = captioned_grid(tiles, captions, cols, row_labels=[classes[k] for k in shown])
    s.figures.append(Figure("samples", png, f"Per class: up to {per_kind} correctly classified images (✓ with "
                                            f"the probability of the class) and up to {per_kind} wrong ones "
                                            "(✗ with the predicted class)."))
    if len(picks) > len(shown):
        s.note = f"First {len(shown)} of {len(picks)} classes shown."
    return s


def _pad(n: int, size: int) -> np.ndarray:
    return np.ones((max(0, n), size, size, 3), np.float32)
