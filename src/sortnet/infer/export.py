"""`sortnet export`: a sortnet model file -> ONNX (optionally int8-quantized) or TorchScript, metadata included.

The exported graph (sortnet.infer.graph) takes raw uint8 pixels already resized as the model's
preprocessing says and does the rest itself. Input contract (the resize is NOT in the graph, so it stays
bit-identical to training): decode the file, apply EXIF orientation, convert to "L" (channels=1) or "RGB"
(channels=3), scale the shorter side to img_size / preprocessing.crop with Pillow's bilinear filter and
centre-crop img_size (resize="shorter_center_crop"; "stretch" resizes both sides), i.e.
`sortnet.data.preprocess.image_to_array`.
The ONNX metadata_props carry everything needed to do that without sortnet: "sortnet" (the full model
metadata JSON), "sortnet.classes", "sortnet.preprocessing", "sortnet.input" (the contract in words).

Usage:
    export_model("runs/x/model.safetensors", "onnx")                         # -> runs/x/model.onnx
    export_model("runs/x/model.safetensors", "onnx", quantize="int8", calibration="fashion-mnist")
    sortnet export runs/x/model.safetensors --format onnx --quantize int8 --calibration photos/
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sortnet.atomic import atomic_write_bytes, check_output
from sortnet.infer.graph import onnx_bytes, torchscript_bytes
from sortnet.infer.onnx_io import INPUT_CONTRACT, ExportError
from sortnet.modelfile import load_model
from sortnet.modelmeta import ModelMeta

__all__ = ["EXPORT_FORMATS", "ExportError", "INPUT_CONTRACT", "export_model", "default_out", "sample_inputs"]

EXPORT_FORMATS = ("onnx", "torchscript")


def default_out(model_path: str | os.PathLike, fmt: str, quantize: str | None = None) -> Path:
    suffix = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}[fmt]
    stem = Path(model_path).with_suffix("")
    return Path(f"{stem}.int8{suffix}" if quantize else f"{stem}{suffix}")


def export_model(model_path: str | os.PathLike, fmt: str = "onnx", out: str | os.PathLike | None = None, *,
                 tta: bool = True, quantize: str | None = None, calibration: str | None = None,
                 max_accuracy_drop: float = 0.5, data_root: str | None = None, progress: bool = False,
                 heldout_images: int = 5000) -> dict:
    """Write the export; returns {"path", "format", "bytes", "quantization"?}. Raises ExportError."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if quantize not in (None, "none", "int8"):
        raise ExportError(f"--quantize must be int8 or none, got {quantize!r}")
    quantize = None if quantize == "none" else quantize
    if quantize and fmt != "onnx":
        raise ExportError("--quantize int8 is available for --format onnx only")
    out = check_output(out if out else default_out(model_path, fmt, quantize), new=True, protect=[model_path])
    model, meta = load_model(model_path)  # the output is checked first: no export of seconds to then refuse
    info: dict = {"path": str(out), "format": fmt}
    if fmt == "torchscript":
        data = torchscript_bytes(model, meta, tta)
    else:
        data = onnx_bytes(model, meta, tta)
        if quantize:
            from sortnet.infer.quantize import quantize_int8

            data, info["quantization"] = quantize_int8(data, meta, calibration, max_accuracy_drop,
                                                       data_root=data_root, progress=progress,
                                                       heldout_images=heldout_images)
    atomic_write_bytes(out, data, new=True, protect=[model_path])
    info["bytes"] = len(data)
    return info


def sample_inputs(meta: ModelMeta, n: int = 4, seed: int = 0) -> np.ndarray:
    """Random uint8 [n, C, H, W] inputs of the model's shape (for smoke tests and benchmarks)."""
    prep = meta.preprocessing
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, prep.channels, prep.img_size, prep.img_size), dtype=np.uint8)
