"""`sortnet.evaluate(model, data)`: accuracy, top-5, per-class precision/recall/F1, confusion matrix.

Which images: a built-in name -> its official test split; a folder with test/ -> that; a plain class
folder -> every image in it.

Usage:
    metrics = evaluate("runs/photos/model.safetensors", "photos/")
"""
from __future__ import annotations

import numpy as np

from sortnet.data.sources import load_eval_data
from sortnet.evaluation.metrics import compute_metrics
from sortnet.infer.predictor import as_predictor


def evaluate(model, data: str, *, device: str = "auto", tta: bool = True, batch_size: int = 256,
             data_root: str | None = None, download: bool = True, progress: bool = True,
             follow_links: bool = False, invert: str = "auto", unknown_accept: float | None = None,
             unknown_threshold: float | None = None) -> dict:
    """model: a model file path, a Classifier or a Predictor. Returns the metrics dict (see compute_metrics).

    follow_links: follow symbolic links that lead out of a data folder (skipped and listed otherwise).
    invert: auto | always | never, decided per image exactly as `predict --invert` (sortnet/data/invert.py), so
    evaluate and predict score the same input for every file.
    unknown_accept / unknown_threshold: move the unknown threshold; "unknown_share" is the share of images
    answered unknown (None for models without a scorer), accuracy still counts each image's closest class.
    """
    predictor = as_predictor(model, device=device, tta=tta, batch_size=batch_size, unknown_accept=unknown_accept,
                             unknown_threshold=unknown_threshold)
    images, skipped = load_eval_data(data, predictor.prep, predictor.classes, data_root=data_root,
                                     download=download, progress=progress, follow_links=follow_links, invert=invert)
    if len(images) == 0:
        raise ValueError(f"no usable images to evaluate in {data!r}")
    probs, scores = predictor.predict_scored(np.asarray(images.images))
    metrics = compute_metrics(images.labels, probs, predictor.classes)
    threshold = predictor.unknown_threshold if scores is not None else None
    metrics["unknown_threshold"] = threshold
    metrics["unknown_share"] = None if threshold is None else float((scores > threshold).mean())
    metrics["data"] = str(data)
    metrics["skipped_files"] = [s.to_dict() for s in skipped]
    return metrics

