"""onnxruntime backend: uint8 image batches -> class probabilities, from an exported .onnx file or a torch model.

Usage:
    backend = OnnxBackend.from_file("runs/x/model.onnx")          # metadata read from the ONNX file
    backend = OnnxBackend.from_torch(model, meta, tta=True)        # exported in memory (about a second)
    probs = backend.predict(uint8_images)                          # [N, C, H, W] -> float32 [N, K]
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sortnet.extras import require
from sortnet.infer.graph import onnx_bytes
from sortnet.infer.onnx_io import INPUT_NAME, UNKNOWN_OUTPUT, OnnxModelError, read_onnx_metadata
from sortnet.modelmeta import ModelMeta
from sortnet.parallel import usable_cores

RUNTIMES = ("auto", "torch", "onnx")


def is_onnx_file(path: str | os.PathLike | None) -> bool:
    return path is not None and str(path).lower().endswith(".onnx")


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_runtime(runtime: str, device: str = "cpu", model_path: str | os.PathLike | None = None) -> str:
    """"torch" or "onnx". auto: onnx for .onnx files, and on the CPU whenever onnxruntime is installed."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    onnx_file = is_onnx_file(model_path)
    if runtime == "torch" and onnx_file:
        raise OnnxModelError(f"{model_path} is an ONNX export; use --runtime onnx (or auto), or the .safetensors "
                             "model file with --runtime torch")
    if runtime == "auto":
        return "onnx" if onnx_file or (str(device) == "cpu" and onnxruntime_available()) else "torch"
    return runtime


ORT_ERRORS_ONLY = 3  # onnxruntime log severity: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal


def session_options(threads: int | None = None):
    """CPU session: all graph optimizations, intra-op threads = usable cores (or `threads`)."""
    ort = require("onnxruntime", "onnx")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or usable_cores()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = ORT_ERRORS_ONLY  # no "[W:onnxruntime:...]" lines on the user's stderr
    ort.set_default_logger_severity(ORT_ERRORS_ONLY)
    return opts


class OnnxBackend:
    """One onnxruntime InferenceSession on the CPU; `predict` is thread-safe (onnxruntime allows concurrent Run)."""

    def __init__(self, onnx_model: bytes, meta: ModelMeta, threads: int | None = None) -> None:
        ort = require("onnxruntime", "onnx")
        self.meta = meta
        try:
            self.session = ort.InferenceSession(onnx_model, sess_options=session_options(threads),
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own untyped errors for bad graphs
            raise OnnxModelError(f"onnxruntime cannot load this model ({str(e)[:200]}); re-export it with "
                                 "`sortnet export MODEL --format onnx`.") from e
        inputs = self.session.get_inputs()
        if [i.name for i in inputs] != [INPUT_NAME]:
            raise OnnxModelError(f"expected one input named {INPUT_NAME!r}; this is not a sortnet export")
        self.has_unknown = UNKNOWN_OUTPUT in [o.name for o in self.session.get_outputs()]

    @classmethod
    def from_torch(cls, model, meta: ModelMeta, tta: bool = True, threads: int | None = None) -> "OnnxBackend":
        return cls(onnx_bytes(model, meta, tta=tta), meta, threads)

    @classmethod
    def from_file(cls, path: str | os.PathLike, threads: int | None = None) -> "OnnxBackend":
        data = _read_onnx(Path(path))
        return cls(data, read_onnx_metadata(data, path), threads)

    def predict(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """float32 probabilities [N, K] for uint8 [N, C, H, W] (already preprocessed)."""
        return self.predict_scored(images, batch_size)[0]

    def predict_scored(self, images: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
        """(float32 probabilities [N, K], float unknown scores [N] or None when the export has no scorer)."""
        images = np.ascontiguousarray(images, dtype=np.uint8)
        names = ["probabilities"] + ([UNKNOWN_OUTPUT] if self.has_unknown else [])
        out = [self.session.run(names, {INPUT_NAME: images[i : i + batch_size]})
               for i in range(0, len(images), batch_size)]
        k = self.meta.num_classes
        probs = np.concatenate([o[0] for o in out]).astype(np.float32, copy=False) if out else np.zeros((0, k), np.float32)
        if not self.has_unknown:
            return probs, None
        return probs, (np.concatenate([o[1] for o in out]).astype(np.float64) if out else np.zeros(0))


def _read_onnx(path: Path) -> bytes:
    if not path.is_file():
        raise OnnxModelError(f"ONNX file not found: {path}. Make one with `sortnet export MODEL --format onnx`.")
    return path.read_bytes()


__all__ = ["OnnxBackend", "OnnxModelError", "RUNTIMES", "resolve_runtime", "read_onnx_metadata",
           "onnxruntime_available", "is_onnx_file"]
