"""Predictor: files, folders, PIL images or arrays -> class names with probabilities.

Preprocessing comes from the model file (the same `image_to_array` as training), so predictions on
files match what the model saw in training. `Predictor.from_file` is the one way to get a Predictor
for a model file (.safetensors on torch or onnxruntime, or an .onnx export); `as_predictor` turns a
path, a Classifier or a Predictor into one.

Usage:
    p = Predictor.from_file("runs/photos/model.safetensors", runtime="auto", threads=2)
    for pred in p.predict_paths(["a.jpg", "folder/"], top_k=3): print(pred.path, pred.top, pred.to_dict())
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from sortnet.calibrate import calibrated_probs, temperature_of
from sortnet.data.dataset import SkippedFile
from sortnet.data.decode import decode_or_reason, has_image_extension, to_rgb_or_l
from sortnet.data.invert import INVERT_CHOICES, model_input
from sortnet.data.walk import Walker
from sortnet.device import resolve_device, resolve_precision
from sortnet.modelfile import load_model
from sortnet.modelmeta import ModelMeta
from sortnet.parallel import usable_cores
from sortnet.tta import TTA, predict_logits
from sortnet.unknown.fit import features_and_logits, unknown_scores
from sortnet.unknown.threshold import choose_threshold

@dataclass
class Prediction:
    path: str | None
    top: list[tuple[str, float]] = field(default_factory=list)  # (class name, probability), best first
    error: str | None = None
    inverted: bool = False
    unknown: bool = False  # unknown_score above the model's threshold: "unknown (closest: <label>)"
    unknown_score: float | None = None  # None: the model has no unknown scorer (older files)

    @property
    def label(self) -> str | None:
        return self.top[0][0] if self.top else None

    def to_dict(self) -> dict:
        """The one JSON shape of a prediction (docs/CONTRACTS.md), used by the API, CLI --json, HTTP and JSONL:
        {"path"?, "class", "probability", "predictions": [{"class", "probability"}, ...], "inverted", "unknown",
        "unknown_score"} ("class" stays the closest class when "unknown" is true; "unknown_score" null for models
        without a scorer), or
        {"path"?, "error", "predictions": []} for a file that could not be read. "path" only when known."""
        d: dict = {} if self.path is None else {"path": self.path}
        if self.error is not None or not self.top:
            d.update(error=self.error or "no prediction", predictions=[])
            return d
        top = [{"class": c, "probability": round(p, 6)} for c, p in self.top]
        d.update({"class": top[0]["class"], "probability": top[0]["probability"], "predictions": top,
                  "inverted": self.inverted, "unknown": self.unknown,
                  "unknown_score": None if self.unknown_score is None else round(self.unknown_score, 6)})
        return d

    @property
    def shown_label(self) -> str | None:
        """What people see: the class, or "unknown (closest: class)"."""
        return f"unknown (closest: {self.label})" if self.unknown and self.label is not None else self.label


HIDDEN_REASON = "hidden name (starts with '.'): not read"


def expand_paths(paths: list[str | os.PathLike], follow_links: bool = False) -> tuple[list[Path], list[SkippedFile]]:
    """(files, skipped): files as given; folders listed by sortnet.data.walk (image files, sorted). Every folder
    entry not read is in skipped with its reason: other extensions, hidden names, loops, links out of the
    folder, special and oversized files."""
    out: list[Path] = []
    skipped: list[SkippedFile] = []
    for p in map(Path, paths):
        if p.is_dir():
            walker = Walker(p, follow_links=follow_links)
            listed = walker.files(p)
            out += sorted(Path(f) for f in listed if has_image_extension(f))
            skipped += [SkippedFile(f, "not an image extension") for f in listed if not has_image_extension(f)]
            skipped += [SkippedFile(h, HIDDEN_REASON) for h in walker.hidden]
            skipped += walker.skipped
        else:
            out.append(p)
    return out, skipped


class Predictor:
    def __init__(self, model, meta: ModelMeta, device: str = "cpu", invert: str = "auto", tta: bool = True,
                 batch_size: int = 64, runtime: str = "torch", threads: int | None = None,
                 unknown_accept: float | None = None, unknown_threshold: float | None = None) -> None:
        """model: a torch SortnetModel, or an OnnxBackend (then runtime is onnx and TTA is what the export holds).
        runtime: torch | onnx | auto; onnx on a torch model exports it in memory. threads: onnxruntime threads.
        unknown_accept / unknown_threshold: move the model file's unknown threshold (sortnet/unknown/threshold.py)."""
        from sortnet.infer.onnx_predict import OnnxBackend, resolve_runtime

        if invert not in INVERT_CHOICES:
            raise ValueError(f"invert must be one of {INVERT_CHOICES}, got {invert!r}")
        self.device = resolve_device(device)
        self.dtype = resolve_precision("fp32", self.device)
        self.meta = meta
        self.classes: list[str] = list(meta.classes)
        self.prep = meta.preprocessing
        self.invert, self.batch_size = invert, batch_size
        self.onnx: OnnxBackend | None = model if isinstance(model, OnnxBackend) else None
        self.tta = meta.exported_tta if self.onnx else ((meta.tta or TTA()) if tta else None)
        self.runtime = "onnx" if self.onnx else resolve_runtime(runtime, self.device.type)
        self.model = None if self.onnx else model.to(self.device).eval()
        if self.runtime == "onnx" and self.onnx is None:  # exported in memory: same weights, same TTA views
            self.onnx = OnnxBackend.from_torch(self.model, meta, tta=self.tta is not None, threads=threads)
        self.temperature = temperature_of(meta)  # probabilities are softmax(logits / T) (sortnet/calibrate.py)
        self.scorer = None if self.model is None else getattr(self.model, "unknown", None)
        scored = self.onnx.has_unknown if self.onnx is not None else self.scorer is not None
        self.unknown_threshold = choose_threshold(meta.unknown if scored else None, unknown_accept, unknown_threshold)

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, runtime: str | None = None, threads: int | None = None,
                  **kwargs) -> "Predictor":
        """THE way to build a Predictor from a file: a .safetensors model file (runtime torch by default, or
        onnx/auto), or an .onnx export (runs on onnxruntime; its TTA is fixed at export). kwargs: device,
        invert, tta, batch_size."""
        from sortnet.infer.onnx_predict import OnnxBackend, is_onnx_file, resolve_runtime

        if is_onnx_file(path):
            resolve_runtime(runtime or "onnx", model_path=path)  # refuses runtime="torch"
            backend = OnnxBackend.from_file(path, threads)
            return cls(backend, backend.meta, **kwargs)
        model, meta = load_model(path)
        return cls(model, meta, runtime=runtime or "torch", threads=threads, **kwargs)

    def preprocess(self, img: Image.Image) -> tuple[np.ndarray, bool]:
        """uint8 [C, H, W] exactly as in training, plus whether it was inverted (data/invert.py decides: dark
        ink on white paper fed to an MNIST-like model; never a colour photo, never a photo model)."""
        return model_input(img, self.prep, self.invert)

    def predict_arrays(self, arrays: np.ndarray) -> np.ndarray:
        """Probabilities float32 [N, K] for uint8 [N, C, H, W] already preprocessed."""
        return self.predict_scored(arrays)[0]

    def predict_scored(self, arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities float32 [N, K], unknown scores float [N] or None for a model without a scorer)."""
        if self.onnx is not None:
            return self.onnx.predict_scored(np.asarray(arrays), self.batch_size)
        if self.scorer is None:
            logits = predict_logits(self.model, arrays, self.device, self.dtype, self.batch_size, self.tta)
            return calibrated_probs(logits, self.temperature), None
        feats, logits = features_and_logits(self.model, arrays, self.device, self.dtype, self.tta, self.batch_size)
        return calibrated_probs(logits, self.temperature), unknown_scores(self.scorer.cpu(), feats, logits)

    def _prediction(self, path, probs: np.ndarray, score, top_k: int, inverted: bool = False) -> Prediction:
        unknown = bool(score is not None and self.unknown_threshold is not None and score > self.unknown_threshold)
        return Prediction(path, self.top(probs, top_k), inverted=inverted, unknown=unknown,
                          unknown_score=None if score is None else float(score))

    def _predictions(self, arrays: np.ndarray, top_k: int, paths=None, inverted=None) -> list[Prediction]:
        probs, scores = self.predict_scored(arrays)
        n = len(probs)
        return [self._prediction(None if paths is None else paths[i], probs[i], None if scores is None else scores[i],
                                 top_k, False if inverted is None else inverted[i]) for i in range(n)]

    def top(self, probs: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k best (class name, probability) of one probability row [K], best first (ties: lower index)."""
        order = np.argsort(-probs, kind="stable")[: max(1, min(k, len(self.classes)))]
        return [(self.classes[i], float(probs[i])) for i in order]

    def predict_batch(self, arrays: np.ndarray, top_k: int = 3) -> list[Prediction]:
        """One Prediction per uint8 [N, C, H, W] image already preprocessed (no path, never inverted)."""
        return self._predictions(arrays, top_k)

    def predict_images(self, images: Iterable[Image.Image], top_k: int = 3) -> list[Prediction]:
        """Images are consumed one at a time (a generator of decodes keeps at most two full-size images alive)."""
        prepped = [self.preprocess(to_rgb_or_l(img)) for img in images]  # alpha on white, CMYK, 16-bit: as decode
        if not prepped:
            return []
        return self._predictions(np.stack([a for a, _ in prepped]), top_k, inverted=[inv for _, inv in prepped])

    def _load(self, path: Path):
        """(uint8 [C, H, W], inverted) for a good file, its skip reason (str) for a bad one; never raises."""
        prepped, reason = decode_or_reason(path, convert=self.preprocess)
        return reason if prepped is None else prepped

    def predict_paths(self, paths: list[str | os.PathLike], top_k: int = 3,
                      follow_links: bool = False) -> list[Prediction]:
        """One Prediction per file (errors reported per file, never raised); decoding runs on all cores."""
        return list(self.iter_predict_paths(paths, top_k, follow_links=follow_links))

    def iter_predict_paths(self, paths: list[str | os.PathLike], top_k: int = 3, chunk: int = 256,
                           follow_links: bool = False):
        """Predictions in file order, `chunk` files at a time: memory stays bounded for huge folders, and
        the next chunk decodes (thread pool, all cores) while the current one runs through the model.
        Entries of folders that are not read (see expand_paths) come last, each with its reason as error."""
        files, skipped = expand_paths(paths, follow_links)
        chunks = [files[i : i + chunk] for i in range(0, len(files), chunk)]
        with ThreadPoolExecutor(max_workers=usable_cores()) as pool:
            pending = [pool.map(self._load, c) for c in chunks[:1]]
            for i, group in enumerate(chunks):
                loaded = list(pending.pop(0))
                if i + 1 < len(chunks):
                    pending.append(pool.map(self._load, chunks[i + 1]))  # decode ahead while we predict
                yield from self._predict_loaded(group, loaded, top_k)
        for s in skipped:  # links not followed, FIFOs, oversized files: reported, never opened
            yield Prediction(s.path, error=s.reason)

    def _predict_loaded(self, files: list[Path], loaded: list, top_k: int) -> list[Prediction]:
        good = [i for i, item in enumerate(loaded) if not isinstance(item, str)]
        results = [Prediction(str(f), error=item if isinstance(item, str) else None) for f, item in zip(files, loaded)]
        if good:
            preds = self._predictions(np.stack([loaded[i][0] for i in good]), top_k, [str(files[i]) for i in good],
                                      [loaded[i][1] for i in good])
            for i, pred in zip(good, preds):
                results[i] = pred
        return results


def as_predictor(model, **kwargs) -> Predictor:
    """A Predictor from a model file path (Predictor.from_file), a Classifier (its .predictor) or a Predictor."""
    if isinstance(model, Predictor):
        return model
    if isinstance(model, (str, os.PathLike)):
        return Predictor.from_file(model, **kwargs)
    if callable(getattr(model, "predictor", None)):  # a sortnet Classifier (not imported: no import cycle)
        return model.predictor(**kwargs)
    raise TypeError(f"expected a model file path, Classifier or Predictor, got {type(model).__name__}")
