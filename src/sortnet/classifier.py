"""Classifier: what `sortnet.train` and `sortnet.load` return — a model plus its ModelMeta, ready to use.

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
from sortnet.modelmeta import ModelMeta
from sortnet.runfolder.layout import MODEL_FILE


class Classifier:
    def __init__(self, model, meta: ModelMeta, run_dir: Path | None = None, metrics: dict | None = None,
                 skipped: list[dict] | None = None) -> None:
        self.model, self.meta, self.run_dir = model.eval(), meta, run_dir
        self.metrics = metrics or meta.metrics
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
        return list(self.meta.classes)

    @property
    def preprocessing(self) -> Preprocessing:
        return self.meta.preprocessing

    @property
    def model_path(self) -> Path | None:
        return self.run_dir / MODEL_FILE if self.run_dir else None

    def predictor(self, **kwargs) -> Predictor:
        """A Predictor over this in-memory model (kwargs: device, invert, tta, batch_size, runtime, threads)."""
        return Predictor(self.model, self.meta, **kwargs)

    def predict(self, inputs, top_k: int = 3, invert: str = "auto", tta: bool = True) -> list[Prediction]:
        """inputs: a path, a folder, a PIL image, a uint8 [N, C, H, W] array, or a list of paths/images."""
        p = self.predictor(invert=invert, tta=tta)
        if isinstance(inputs, np.ndarray):
            return p.predict_batch(inputs, top_k)
        items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if items and all(isinstance(i, Image.Image) for i in items):
            return p.predict_images(list(items), top_k)
        return p.predict_paths(list(items), top_k)

    def evaluate(self, data: str, **kwargs) -> dict:
        from sortnet.evaluation.run import evaluate

        return evaluate(self, data, **kwargs)

    def save(self, path: str | os.PathLike) -> Path:
        """Write this model as a model file (current format; metadata and weights checksummed)."""
        return save_model(path, self.model, self.meta)

    def __repr__(self) -> str:
        return f"Classifier(arch={self.meta.arch!r}, classes={len(self.classes)}, run_dir={self.run_dir})"
