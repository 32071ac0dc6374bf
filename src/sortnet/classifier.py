"""Classifier: what `sortnet.train` and `sortnet.load` return — a model plus its metadata, ready to use.

Usage:
    clf = sortnet.load("runs/photos/model.safetensors")
    clf.predict(["a.jpg"], top_k=3); clf.evaluate("photos/"); clf.save("copy.safetensors")
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from sortnet.data.preprocess import Preprocessing
from sortnet.infer.predictor import Prediction, Predictor
from sortnet.modelfile import load_model, save_model


class Classifier:
    def __init__(self, model, meta: dict, run_dir: Path | None = None, metrics: dict | None = None,
                 skipped: list[dict] | None = None) -> None:
        self.model, self.meta, self.run_dir = model.eval(), meta, run_dir
        self.metrics = metrics or meta.get("metrics", {})
        self.skipped = skipped or []

    @classmethod
    def from_training(cls, result: dict) -> "Classifier":
        return cls(result["model"], result["meta"], result["run_dir"], result["metrics"], result["skipped"])

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Classifier":
        model, meta = load_model(path)
        return cls(model, meta)

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.meta["preprocessing"])

    @property
    def model_path(self) -> Path | None:
        return self.run_dir / "model.safetensors" if self.run_dir else None

    def predictor(self, **kwargs) -> Predictor:
        return Predictor(self.model, self.meta, **kwargs)

    def predict(self, inputs, top_k: int = 3, invert: str = "auto", tta: bool = True) -> list[Prediction]:
        """inputs: a path, a folder, a PIL image, a uint8 [N, C, H, W] array, or a list of paths/images."""
        p = self.predictor(invert=invert, tta=tta)
        if isinstance(inputs, np.ndarray):
            return [Prediction(None, p._top(row, top_k)) for row in p.predict_arrays(inputs)]
        items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if items and all(isinstance(i, Image.Image) for i in items):
            return p.predict_images(list(items), top_k)
        return p.predict_paths(list(items), top_k)

    def evaluate(self, data: str, **kwargs) -> dict:
        from sortnet.evaluation.run import evaluate

        return evaluate(self, data, **kwargs)

    def save(self, path: str | os.PathLike) -> Path:
        return save_model(path, self.model, {k: v for k, v in self.meta.items()
                                              if k not in ("format_version", "sortnet_version", "weights_sha256")})

    def __repr__(self) -> str:
        return f"Classifier(arch={self.meta['arch']!r}, classes={len(self.classes)}, run_dir={self.run_dir})"
