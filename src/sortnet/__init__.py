"""sortnet: a folder of photos or a famous dataset -> the best image classifier your machine can train.

Usage:
    import sortnet
    clf = sortnet.train("photos/")                       # or "fashion-mnist", "cifar10", ...
    bundle = sortnet.prepare("photos/")                  # check, decode, split once ...
    clf = sortnet.fit(bundle, model="mlp", callbacks=[sortnet.EarlyStopping(patience=2)])   # ... fit many times
    sortnet.evaluate(clf, "photos/")
    sortnet.predict("runs/photos/model.safetensors", ["new.jpg"])
    sortnet.list_models(); sortnet.list_datasets()
    report = sortnet.check("photos/")                    # data problems: counts, bad files, duplicates
    found = sortnet.find_label_errors("photos/")         # wrong labels: found.suspects, found.estimated_errors
    clf = sortnet.load("runs/photos/model.safetensors")
    sortnet.ladder("photos/", time_budget="5m")          # linear -> mlp -> CNN -> pretrained: one table
    sortnet.curve("photos/")                             # accuracy vs training-set size
    sortnet.ensemble(["a.safetensors", "b.safetensors"], out="ens.safetensors")
    sortnet.report(clf, "photos/")                       # RUN_DIR/report.html: curves, failures, weights, dreams
    result = sortnet.search("digits", trials=20)        # Optuna: evolve layer specs + recipes (leaderboard)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sortnet.version import __version__  # noqa: F401 - sortnet.__version__

if TYPE_CHECKING:  # annotations only: `import sortnet` stays light
    from sortnet.classifier import Classifier

# list_models / list_datasets, not models / datasets: those names are the sortnet.models package.
__all__ = ["train", "prepare", "fit", "search", "Callback", "EarlyStopping", "check", "evaluate", "predict", "report",
           "load", "list_models", "list_datasets", "Classifier", "Prediction", "Predictor", "TrainConfig", "ladder",
           "curve", "ensemble", "find_label_errors"]


def train(data=None, **kwargs):
    """Train a classifier; keyword names and defaults match `sortnet train --help` (see TrainConfig)."""
    from sortnet.runs.train import train as _train

    return _train(data, **kwargs)


def prepare(data, **settings):
    """Check, decode and split the data once (a DataBundle); any `train` setting is accepted, the data ones used."""
    from sortnet.runs.prepare import prepare as _prepare

    return _prepare(data, **settings)


def fit(bundle, *, out=None, callbacks=None, **settings):
    """Train on a prepared bundle -> Classifier; out=None writes nothing; callbacks: Keras-style Callback objects."""
    from sortnet.runs.fit import fit as _fit

    return _fit(bundle, out=out, callbacks=callbacks, **settings)


def search(data, *, out=None, **settings):
    """Evolve layer specs and recipes with Optuna (see `sortnet search --help`) -> SearchResult (leaderboard,
    best model file); settings: trials, time_budget, objectives, sampler, storage, ... (SearchConfig)."""
    from sortnet.nas.run import search as _search

    return _search(data, out=out, **settings)


def check(data, **kwargs) -> dict:
    """Check a data folder or label CSV (never modifies it): the report as a dict (see `sortnet check`).

    report["ok"] is False only for fatal problems; report["warnings"] lists the rest. Cached per file.
    """
    from sortnet.data.check import run_check

    return run_check(str(data), **kwargs).report


def find_label_errors(data, **kwargs):
    """Images whose label is probably wrong (out-of-fold predictions + confident learning; reads the data only):
    a LabelErrors with .suspects (most likely wrong first: path, given, suggested, score), .ranking (every
    image), .estimated_errors and .estimate_note ('' or why the estimate is unreliable: weak out-of-fold models).
    kwargs: folds=5, seed=0, time_budget, score, progress, train settings."""
    from sortnet.labels.find import find_label_errors as _find

    return _find(data, **kwargs)


def evaluate(model, data, **kwargs):
    """Metrics of a model (file path or Classifier) on a folder or built-in dataset's test split."""
    from sortnet.evaluation.run import evaluate as _evaluate

    return _evaluate(model, data, **kwargs)


def predict(model, paths, top_k: int = 3, invert: str = "auto", device: str = "cpu", tta: bool = True,
            runtime: str | None = None, follow_links: bool = False, unknown_accept: float | None = None,
            unknown_threshold: float | None = None):
    """Predictions for image files and folders: a list of Prediction (class names + probabilities;
    `.to_dict()` is the JSON shape of docs/CONTRACTS.md). model: a model file (.safetensors or .onnx),
    a Classifier or a Predictor. runtime: torch | onnx | auto (default: torch, onnx for .onnx files).
    follow_links: follow links out of a folder (skipped, each a Prediction with its reason, otherwise).
    unknown_accept / unknown_threshold: move the model's unknown threshold (Prediction.unknown)."""
    from sortnet.infer.predictor import as_predictor

    items = paths if isinstance(paths, (list, tuple)) else [paths]
    options = {"invert": invert, "device": device, "tta": tta, **({"runtime": runtime} if runtime else {}),
               "unknown_accept": unknown_accept, "unknown_threshold": unknown_threshold}
    return as_predictor(model, **options).predict_paths(list(items), top_k, follow_links=follow_links)


def report(model, data, out=None, **kwargs):
    """Write OUT/report.html (default: beside the model file) for a model file or Classifier on a folder or
    built-in dataset's test split; returns its path. Options: see `sortnet report --help`."""
    from sortnet.reporting import report as _report

    return _report(model, data, out, **kwargs)


def load(path):
    """A Classifier from a model file; rebuilds the model from the file alone (never unpickles)."""
    from sortnet.classifier import Classifier

    return Classifier.load(path)


def ladder(data, *, time_budget="10m", rungs=None, out=None, **settings) -> dict:
    """The model ladder (linear -> mlp -> CNN -> pretrained head -> fine-tuned) on one split within time_budget:
    {"rows": one dict per rung (accuracy, macro_f1, train_seconds, parameters, predict_latency_ms, file_mb, ...),
    "out": folder with ladder.csv/json/png and each rung's model file}."""
    from sortnet.compare.ladder import ladder as _ladder

    return _ladder(data, time_budget=time_budget, rungs=rungs, out=out, **settings)


def curve(data, *, fractions=None, seeds: int = 2, out=None, **settings) -> dict:
    """Learning curve: {"points" (mean/std accuracy per training-set fraction), "runs", "verdict", "out"}."""
    from sortnet.compare.curve import curve as _curve

    return _curve(data, fractions=fractions, seeds=seeds, out=out, **settings)


def ensemble(models, *, out, weights: str = "equal") -> "Classifier":
    """Combine model files (same classes) into one ensemble file at `out`; returns it loaded as a Classifier."""
    from sortnet.ensemble.build import make_ensemble

    return load(make_ensemble(list(models), out, weights)["path"])


def list_models() -> list[dict]:
    """Registered model names with descriptions (any layer spec string works too)."""
    from sortnet.models.registry import list_models

    return [{"name": m.name, "description": m.description, "kind": m.kind,
             "imagenet_weights": m.defaults.pretrained} for m in list_models()]


def list_datasets(data_root: str | None = None) -> list[dict]:
    """Built-in datasets and whether their files are present."""
    from sortnet.data.builtin import list_datasets

    return list_datasets(data_root)


def __getattr__(name: str):
    # Lazy so `import sortnet` stays fast (torch loads only when used).
    if name == "Classifier":
        from sortnet.classifier import Classifier

        return Classifier
    if name in ("Prediction", "Predictor"):
        from sortnet.infer import predictor

        return getattr(predictor, name)
    if name in ("Callback", "EarlyStopping"):
        from sortnet.training import callbacks

        return getattr(callbacks, name)
    if name == "TrainConfig":
        from sortnet.config import TrainConfig

        return TrainConfig
    raise AttributeError(f"module 'sortnet' has no attribute {name!r}")
