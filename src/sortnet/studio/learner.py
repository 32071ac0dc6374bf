"""The studio's Train button: the photo path (frozen ImageNet backbone features + linear head) in seconds.

The backbone (EfficientNet-Lite0, bundled weights) is loaded once per studio. Features (orig + flip
views, exactly the model file's flip TTA) are kept per image file, keyed by (path, size, mtime), so a
retrain computes only the images added since the last one. The head is fitted by transfer/head.py
(L2 chosen by 3-fold CV: that CV accuracy is the honest number shown, as every image trains the head).
The model file written to DIR/.sortnet-studio/model.safetensors is an ordinary sortnet model file
(`sortnet predict` / `export` / `report` take it). The browser runs the same backbone as an ONNX graph
(backbone_onnx) and applies the head itself (head_json): one backbone for every retrain, no re-export.
Each training also fits a knn unknown scorer on the same features (studio/unknown.py), stored in the model
file and computed by the page, so both say "unknown (closest: X)" on the same images.

Usage:
    learner = Learner(folder)                    # loads the backbone
    learner.prefetch()                           # features of new images, in a background thread
    result = learner.train(progress=lambda done, total, stage: ...)   # features + head (what the page runs)
    learner.save()                               # the model file (downloads, server predictions)
    learner.head_json(); learner.backbone_onnx()
"""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import torch

from sortnet.data.cacheentry import read_entry
from sortnet.data.folder import decode_files
from sortnet.data.preprocess import Preprocessing
from sortnet.modelfile import save_model
from sortnet.modelmeta import ModelMeta, Provenance
from sortnet.models.pretrained import load_pretrained
from sortnet.models.registry import create_model, model_defaults
from sortnet.runfolder.layout import MODEL_FILE
from sortnet.studio.folder import StudioError, StudioFolder
from sortnet.studio.unknown import fit_studio_unknown
from sortnet.transfer.extract import EVAL_VIEWS, FeatureExtractor
from sortnet.transfer.featcache import backbone_key, features_dir
from sortnet.transfer.head import train_head
from sortnet.tta import TTA

ARCH = "efficientnet-lite0"
CHUNK = 16  # images per extraction step: the page's progress bar moves this often


@dataclasses.dataclass
class TrainingSet:
    """What one training fitted: the suspects panel's out-of-fold predictions start from it (no re-extraction)."""
    paths: list[Path]
    feats: np.ndarray  # float32 [2, N, F] (orig, flip)
    labels: np.ndarray  # int64 [N], indexes classes
    classes: list[str]
    lam: float  # the L2 strength the head's CV chose


@dataclasses.dataclass
class TrainResult:
    classes: list[str]
    images: int
    new_images: int  # images whose features were computed since the last training (by prefetch or this Train)
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
        self.new_since_training = 0  # images whose features were computed (by prefetch or Train) since the last Train
        self.last: TrainingSet | None = None  # what the last training fitted (the suspects panel reuses it)
        self.unreadable: set[tuple] = set()  # keys whose file did not decode: not retried until it changes
        self.lock = threading.Lock()  # one training at a time
        self._extract_lock = threading.Lock()  # one extraction chunk at a time (prefetch and Train share the work)
        self._prefetching = threading.Lock()  # held while a prefetch thread runs
        self.head: dict | None = None  # what head_json returns, after a training
        self._fitted: tuple | None = None  # (classes, LinearHead, images, (scorer, spec)): what save() writes
        self.unknown: tuple | None = None  # (UnknownScorer, ModelMeta.unknown entry) of the last training

    def _key(self, path: Path) -> tuple | None:
        try:
            st = path.stat()
        except OSError:  # trashed or renamed meanwhile
            return None
        return str(path), st.st_size, st.st_mtime_ns

    def _todo(self, paths: list[Path]) -> list[Path]:
        return [p for p in paths if (k := self._key(p)) is not None and k not in self.features
                and k not in self.unreadable]

    def _extract_new(self, paths: list[Path], progress) -> int:
        """Features of the files not seen before (in chunks, reporting progress); returns how many."""
        todo = self._todo(paths)
        for start in range(0, len(todo), CHUNK):
            with self._extract_lock:
                chunk = self._todo(todo[start:start + CHUNK])  # a prefetch may have done some meanwhile
                keys = [self._key(p) for p in chunk]
                images, kept, _skipped = decode_files([str(p) for p in chunk], self.prep, workers=1)
                feats = self.extractor.extract(images, EVAL_VIEWS) if len(images) else None  # [2, n, F]
                for row, i in enumerate(kept):
                    self.features[keys[i]] = feats[:, row]
                self.new_since_training += len(kept)
                self.unreadable.update(k for i, k in enumerate(keys) if i not in set(kept) and k is not None)
            progress(min(start + CHUNK, len(todo)), len(todo), "features")
        return len(todo)

    def _listing(self) -> dict[str, list[str]]:
        return {c: files for c, files in self.folder.classes().items() if files}

    def prefetch(self) -> bool:
        """Compute the features of images not seen yet in a background thread (no-op when one runs); whether
        one was started. Train then only fits the head; a Train pressed meanwhile shares the remaining work."""
        if not self._prefetching.acquire(blocking=False):
            return False
        threading.Thread(target=self._prefetch, daemon=True, name="studio-features").start()
        return True

    def _prefetch(self) -> None:
        try:
            while True:  # images saved while this ran are picked up by the next round
                paths = [self.folder.root / c / f for c, files in self._listing().items() for f in files]
                if not self._todo(paths):
                    return
                self._extract_new(paths, lambda done, total, stage: None)
        except Exception:  # noqa: BLE001 - best effort: Train extracts whatever is missing and reports errors
            return
        finally:
            self._prefetching.release()

    def wait_prefetch(self, timeout: float = 60.0) -> bool:
        """Block until no prefetch runs (tests, benchmarks); whether it finished within timeout seconds."""
        if self._prefetching.acquire(timeout=timeout):
            self._prefetching.release()
            return True
        return False

    def train(self, progress=lambda done, total, stage: None) -> TrainResult:
        """Fit the head on every image of every class (save() writes the model file). StudioError when impossible."""
        if not self.lock.acquire(timeout=60):  # a save() of the previous model may still be writing
            raise StudioError("a training is already running; wait for it to finish")
        try:
            return self._train(progress)
        finally:
            self.lock.release()

    def _train(self, progress) -> TrainResult:
        t0 = time.perf_counter()
        listing = self._listing()
        if len(listing) < 2:
            raise StudioError("training needs at least 2 classes with images")
        paths = [self.folder.root / c / f for c, files in listing.items() for f in files]
        labels_all = [i for i, files in enumerate(listing.values()) for _ in files]
        self._extract_new(paths, progress)
        rows = [(p, self.features[k], y) for p, y in zip(paths, labels_all)
                if (k := self._key(p)) is not None and k in self.features]
        if len({y for *_, y in rows}) < 2:
            raise StudioError("training needs at least 2 classes with readable images")
        feats = np.stack([f for _, f, _ in rows], axis=1)  # [2, N, F]
        labels = np.asarray([y for *_, y in rows], np.int64)
        new, self.new_since_training = self.new_since_training, 0
        progress(0, 1, "head")
        head = train_head(feats, labels, len(listing), views=EVAL_VIEWS)
        self.last = TrainingSet([p for p, _, _ in rows], feats, labels, list(listing), head.info["lambda"])
        self.unknown = fit_studio_unknown(feats, labels, len(listing))  # "unknown (closest: X)" (studio/unknown.py)
        self._fitted = (list(listing), head, len(labels), self.unknown)
        self.head = {"classes": list(listing), "weight": head.weight.tolist(), "bias": head.bias.tolist(),
                     "cv_accuracy": head.info["cv_accuracy"], "images": len(labels)}
        progress(1, 1, "head")
        return TrainResult(list(listing), len(labels), new, head.info["cv_accuracy"],
                           round(time.perf_counter() - t0, 2), self.folder.outputs() / MODEL_FILE)

    def save(self) -> Path:
        """Write the last training's model file (DIR/.sortnet-studio/model.safetensors); its path. Separate from
        train(): the page goes live on head_json first (writing the 14 MB file took 2.5 s of a 3 s retrain)."""
        with self.lock:
            if self._fitted is None:
                raise StudioError("no training yet: press Train first")
            return self._save(*self._fitted)

    def _save(self, classes: list[str], head, n: int, unknown: tuple) -> Path:
        model = create_model(self.arch, 3, len(classes), self.prep.img_size, self.prep.mean, self.prep.std)
        model.body.load_state_dict(self.model.body.state_dict())
        with torch.no_grad():
            model.head.weight.copy_(head.weight)
            model.head.bias.copy_(head.bias)
        model.add_module("unknown", unknown[0])  # the same knn scorer the page computes
        meta = ModelMeta(classes=classes, preprocessing=self.prep, arch=self.arch, tta=TTA(flip=True),
                         data=str(self.folder.root),
                         recipe={"model": self.arch, "pretrained": True, "finetune": "head", "views": 2,
                                 "source": "sortnet studio"},
                         metrics={"cv": {"accuracy": head.info["cv_accuracy"], "images": n}},
                         provenance=Provenance(weights_source=self.origin.to_dict()), unknown=unknown[1])
        return save_model(self.folder.outputs() / MODEL_FILE, model.eval(), meta)

    def backbone_onnx(self) -> bytes:
        """The backbone graph the browser runs: float pixels x [B, 3, S, S] (0..255) -> features [B, F]."""
        data = read_entry(self.onnx_file)  # a verified cache entry (magic + SHA-256 + the ONNX bytes)
        if data is None:  # written by the first extraction; export it now when none ran yet (or it was damaged)
            self.extractor.extract(np.zeros((1, 3, self.prep.img_size, self.prep.img_size), np.uint8), ("orig",))
            data = read_entry(self.onnx_file)
        if data is None:
            raise StudioError("the backbone could not be exported to ONNX; the page falls back to the server")
        return data
