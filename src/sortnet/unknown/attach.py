"""After training: the unknown scorer fitted and attached to the model, its entry put in the metadata.

Usage (runs/finish.py):
    model, meta, val_scores = attach_unknown(model, meta, bundle, tta, cfg, device, dtype, features=None)
"""
from __future__ import annotations

import numpy as np

from sortnet.calibrate import temperature_of
from sortnet.unknown.fit import fit_unknown
from sortnet.unknown.scorer import DEFAULT_METHOD


def attach_unknown(model, meta, bundle, tta, cfg, device, dtype=None, features: dict | None = None):
    """(model with submodule `unknown`, meta with `unknown`, validation scores) -- or the inputs unchanged and
    None when the run has no validation images, the model no features, or cfg.unknown_method is "none"."""
    method = getattr(cfg, "unknown_method", "auto")
    if method == "none":
        return model, meta, None
    fitted = fit_unknown(model, bundle, tta, device, dtype, temperature=temperature_of(meta),
                         accept=getattr(cfg, "unknown_accept", 0.95),
                         method=DEFAULT_METHOD if method == "auto" else method, features=features,
                         seed=getattr(cfg, "seed", 0))
    if fitted is None:
        return model, meta, None
    scorer, spec, scores = fitted
    model.add_module("unknown", scorer.to("cpu"))
    return model, meta.replace(unknown=spec), np.asarray(scores)


def without_unknown(model, meta):
    """The model and metadata without a scorer (ensembles hold plain members: one feature space per model)."""
    if "unknown" in dict(model.named_children()):
        delattr(model, "unknown")
    return model, meta.replace(unknown=None)
