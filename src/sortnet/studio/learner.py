"""The studio's Train button: the photo path (frozen ImageNet backbone features + linear head) in seconds.

The backbone (EfficientNet-Lite0, bundled weights) is loaded once per studio. Features (orig + flip
views, exactly the model file's flip TTA) are kept per image file, keyed by (path, size, mtime), so a
retrain computes only the images added since the last one. The head is fitted by transfer/head.py
(L2 chosen by 3-fold CV: that CV accuracy is the honest number shown, as every image trains the head).
The model file written to DIR/.sortnet-studio/model.safetensors is an ordinary sortnet model file
(`sortnet predict` / `export` / `report` take it). The browser runs the same backbone as an ONNX graph
(backbone_onnx) and applies the head itself (head_json): one backbone for every retrain, no re-export.

Usage:
    learner = Learner(folder)                    # loads the backbone
    result = learner.train(progress=lambda done, total, stage: ...)
    learner.head_json(); learner.backbone_onnx()
"""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import torch

from sortnet.data.folder import decode_files
from sortnet.data.preprocess import Preprocessing
from sortnet.infer.batch import TTA
from sortnet.modelfile import save_model
from sortnet.modelmeta import ModelMeta, Provenance
from sortnet.models.pretrained import load_pretrained
from sortnet.models.registry import create_model, model_defaults
from sortnet.studio.folder import StudioError, StudioFolder
from sortnet.transfer.extract import EVAL_VIEWS, FeatureExtractor
from sortnet.transfer.featcache import backbone_key, features_dir
from sortnet.transfer.head import train_head

ARCH = "efficientnet-lite0"
MODEL_FILE = "model.safetensors"
CHUNK = 16  # images per extraction step: the page's progress bar moves this often


@dataclasses.dataclass
class TrainResult:
    classes: list[str]
    images: int
    new_images: int  # features computed this time (the rest came from memory)
    cv_accuracy: float
    seconds: float
    model_path: Path


class Learner:
    def __init__(self, folder: StudioFolder, arch: str = ARCH, weights: str | None = None) -> None:
        self.folder, self.arch = folder, arch
        d = model_defaults(arch, pretrained=True)
        self.prep = Preprocessing(img_size=d.img_size, channels=3, mean=d.mean, std=d.std, crop=d.crop)
        self.model = create_model(arch, 3, 2, self.prep.img_size, self.prep.mean, self.prep.std)
        self.origin = load_pretrained(self.model, arch, self.prep.img_size, weights, progress=False)
        self.model.eval()
        backbone = {"arch": arch, "weights_sha256": self.origin.sha256}
        self.onnx_file = features_dir() / f"{backbone_key(backbone, self.prep)}.onnx"
        self.extractor = FeatureExtractor(self.model, torch.device("cpu"), onnx_cache=self.onnx_file)
        self.features: dict[tuple, np.ndarray] = {}  # (path, size, mtime_ns) -> float32 [2, F] (orig, flip)
        self.lock = threading.Lock()  # one training at a time
        self.head: dict | None = None  # what head_json returns, after a training

    def _key(self, path: Path) -> tuple:
        st = path.stat()
        return str(path), st.st_size, st.st_mtime_ns

    def _extract_new(self, paths: list[Path], progress) -> int:
        """Features of the files not seen before (in chunks, reporting progress); returns how many."""
        todo = [p for p in paths if self._key(p) not in self.features]
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            images, kept, _skipped = decode_files([str(p) for p in chunk], self.prep, workers=1)
            if len(images):
                feats = self.extractor.extract(images, EVAL_VIEWS)  # [2, n, F]
                for row, i in enumerate(kept):
                    self.features[self._key(chunk[i])] = feats[:, row]
            progress(min(start + CHUNK, len(todo)), len(todo), "features")
        return len(todo)

    def train(self, progress=lambda done, total, stage: None) -> TrainResult:
        """Fit the head on every image of every class; writes the model file. StudioError when impossible."""
        if not self.lock.acquire(blocking=False):
            raise StudioError("a training is already running; wait for it to finish")
        try:
            return self._train(progress)
        finally:
            self.lock.release()

    def _train(self, progress) -> TrainResult:
        t0 = time.perf_counter()
        listing = {c: files for c, files in self.folder.classes().items() if files}
        if len(listing) < 2:
            raise StudioError("training needs at least 2 classes with images")
        paths = [self.folder.root / c / f for c, files in listing.items() for f in files]
        labels_all = [i for i, files in enumerate(listing.values()) for _ in files]
        new = self._extract_new(paths, progress)
        rows = [(self.features[k], y) for p, y in zip(paths, labels_all) if (k := self._key(p)) in self.features]
        if len({y for _, y in rows}) < 2:
            raise StudioError("training needs at least 2 classes with readable images")
        feats = np.stack([f for f, _ in rows], axis=1)  # [2, N, F]
        labels = np.asarray([y for _, y in rows], np.int64)
        progress(0, 1, "head")
        head = train_head(feats, labels, len(listing), views=EVAL_VIEWS)
        path = self._save(list(listing), head, len(labels))
        self.head = {"classes": list(listing), "weight": head.weight.tolist(), "bias": head.bias.tolist(),
                     "cv_accuracy": head.info["cv_accuracy"], "images": len(labels)}
        progress(1, 1, "head")
        return TrainResult(list(listing), len(labels), new, head.info["cv_accuracy"],
                           round(time.perf_counter() - t0, 2), path)

    def _save(self, classes: list[str], head, n: int) -> Path:
        model = create_model(self.arch, 3, len(classes), self.prep.img_size, self.prep.mean, self.prep.std)
        model.body.load_state_dict(self.model.body.state_dict())
        with torch.no_grad():
            model.head.weight.copy_(head.weight)
            model.head.bias.copy_(head.bias)
        meta = ModelMeta(classes=classes, preprocessing=self.prep, arch=self.arch, tta=TTA(flip=True),
                         data=str(self.folder.root),
                         recipe={"model": self.arch, "pretrained": True, "finetune": "head", "views": 2,
                                 "source": "sortnet studio"},
                         metrics={"cv": {"accuracy": head.info["cv_accuracy"], "images": n}},
                         provenance=Provenance(weights_source=self.origin.to_dict()))
        return save_model(self.folder.outputs() / MODEL_FILE, model.eval(), meta)

    def backbone_onnx(self) -> bytes:
        """The backbone graph the browser runs: float pixels x [B, 3, S, S] (0..255) -> features [B, F]."""
        if not self.onnx_file.is_file():  # written by the first extraction; export it now when none ran yet
            self.extractor.extract(np.zeros((1, 3, self.prep.img_size, self.prep.img_size), np.uint8), ("orig",))
        if not self.onnx_file.is_file():
            raise StudioError("the backbone could not be exported to ONNX; the page falls back to the server")
        return self.onnx_file.read_bytes()
