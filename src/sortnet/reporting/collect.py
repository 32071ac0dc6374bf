"""What a report is made from: the model, its metadata, the evaluated images with their labels and the
model's probabilities for every image (the same predictions as `sortnet evaluate`, TTA included).

Usage:
    inputs = collect("runs/fm/model.safetensors", "fashion-mnist")    # loads, predicts with a progress bar
    inputs = ReportInputs.from_arrays(model, meta, images, labels, probs, data="fashion-mnist", split="test")
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sortnet.errors import SortnetError
from sortnet.modelmeta import ModelMeta
from sortnet.progress import progress as show

PREDICT_CHUNK = 2000  # images per progress-bar step
ONNX_MIN_IMAGES = 2000  # runtime auto: below this many images the ~1.5 s ONNX export costs more than it saves


class ReportError(SortnetError, ValueError):
    """The report cannot be made from what was given; the message says what to give instead."""


@dataclass
class ReportInputs:
    model: object  # SortnetModel on the CPU, eval mode
    meta: ModelMeta
    images: np.ndarray  # uint8 [N, C, H, W], exactly what the model saw
    labels: np.ndarray  # int64 [N], indices into classes
    probs: np.ndarray  # float32 [N, K], softmax of the (TTA-averaged) logits
    data: str = ""
    split: str | None = None  # which images: "test", "val", ... or a description
    skipped: list[dict] = field(default_factory=list)
    model_path: Path | None = None
    run_dir: Path | None = None  # the training run folder (metrics.json, run.json, tensorboard/) if known
    collect_seconds: float = 0.0  # loading and predicting, for the report's own timing line

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)


def _resolve_model(model) -> tuple[object, dict, Path | None, Path | None]:
    """(SortnetModel, meta, model file, run folder) from a path, a Classifier or a torch Predictor."""
    from sortnet.classifier import Classifier
    from sortnet.infer.predictor import Predictor
    from sortnet.modelfile import load_model

    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.suffix.lower() == ".onnx":
            raise ReportError(f"{path} is an ONNX export; the report needs the .safetensors model file it was "
                              "exported from (Grad-CAM and dreams need gradients)")
        net, meta = load_model(path)
        return net, meta, path, path.parent
    if isinstance(model, Classifier):
        path = model.model_path
        return model.model, model.meta, path if path and path.is_file() else None, model.run_dir
    if isinstance(model, Predictor):
        if model.model is None:
            raise ReportError("the report needs a torch Predictor (runtime='torch'), not an ONNX one")
        return model.model, model.meta, None, None
    raise TypeError(f"expected a model file path, Classifier or Predictor, got {type(model).__name__}")


def eval_split_name(data: str) -> str:
    """Which images load_eval_data reads from `data`: a built-in's test split, a folder's test/ or val/, or all."""
    from sortnet.data.builtin import builtin_name

    if builtin_name(str(data)) is not None and not any(sep in str(data) for sep in ("/", os.sep)):
        return "official test split"
    root = Path(data).expanduser()
    names = {p.name.lower() for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    for split in ("test", "val", "valid", "validation"):
        if split in names:
            return f"{split}/ folder"
    return "every image"


def predict_probs(model, meta: ModelMeta, images: np.ndarray, *, device: str = "cpu", tta: bool = True,
                  batch_size: int = 256, runtime: str = "auto", progress: bool = True) -> np.ndarray:
    """float32 [N, K] probabilities, in chunks with a progress bar. runtime auto: onnxruntime on the CPU when
    installed and there are >= ONNX_MIN_IMAGES images (same weights and TTA views as torch, ~3x faster on a
    2-core AVX2 CPU), else torch."""
    from sortnet.infer.predictor import Predictor

    if runtime == "auto" and len(images) < ONNX_MIN_IMAGES:
        runtime = "torch"

    predictor = Predictor(model, meta, device=device, tta=tta, batch_size=batch_size, runtime=runtime)
    chunks = range(0, len(images), PREDICT_CHUNK)
    out = [predictor.predict_arrays(np.asarray(images[s : s + PREDICT_CHUNK]))
           for s in show(chunks, desc="report: predictions", unit="chunk", enabled=progress, leave=False)]
    model.to("cpu").eval()
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, meta.num_classes), np.float32)


def collect(model, data: str, *, device: str = "cpu", tta: bool = True, batch_size: int = 256,
            runtime: str = "auto", data_root: str | None = None, download: bool = True,
            progress: bool = True) -> ReportInputs:
    """Load the model and the evaluation images of `data` (as `sortnet evaluate` picks them) and predict them all."""
    from sortnet.data.sources import load_eval_data

    net, meta, path, run_dir = _resolve_model(model)
    images, skipped = load_eval_data(str(data), meta.preprocessing, list(meta.classes), data_root=data_root,
                                     download=download, progress=progress)
    if len(images) == 0:
        raise ReportError(f"no usable images to report on in {data!r}")
    pixels = np.asarray(images.images)
    probs = predict_probs(net, meta, pixels, device=device, tta=tta, batch_size=batch_size, runtime=runtime,
                          progress=progress)
    return ReportInputs(net.eval(), meta, pixels, np.asarray(images.labels, np.int64), probs, data=str(data),
                        split=eval_split_name(str(data)), skipped=[s.to_dict() for s in skipped],
                        model_path=path, run_dir=run_dir)
