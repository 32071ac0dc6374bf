"""Export a sortnet model file to ONNX (optionally int8-quantized) or TorchScript, metadata included.

The exported graph takes raw uint8 pixels and does everything after the resize itself:

    input  "images"        uint8 [batch, C, H, W], 0..255, H = W = preprocessing.img_size
    output "probabilities" float32 [batch, K] (softmax; test-time-augmentation views averaged)
    output "logits"        float32 [batch, K]

Input contract (the resize is NOT in the graph, so it stays bit-identical to training): decode the file,
apply EXIF orientation, convert to "L" (channels=1) or "RGB" (channels=3), scale the shorter side to
img_size with Pillow's bilinear filter and centre-crop (resize="shorter_center_crop"; "stretch" resizes
both sides), i.e. `sortnet.data.preprocess.image_to_array`. Normalization ((x/255 - mean)/std) is inside.
The ONNX metadata_props carry everything needed to do that without sortnet: "sortnet" (the full model
metadata JSON), "sortnet.classes", "sortnet.preprocessing", "sortnet.input" (this contract in words).

Usage:
    export_model("runs/x/model.safetensors", "onnx")                         # -> runs/x/model.onnx
    export_model("runs/x/model.safetensors", "onnx", quantize="int8", calibration="fashion-mnist")
    sortnet export runs/x/model.safetensors --format onnx --quantize int8 --calibration photos/
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sortnet.atomic import atomic_write_bytes
from sortnet.errors import SortnetError
from sortnet.infer.batch import TTA, tta_views

EXPORT_FORMATS = ("onnx", "torchscript")
OPSET = 17
INPUT_NAME, OUTPUT_NAMES = "images", ("probabilities", "logits")
INPUT_CONTRACT = (
    "images: uint8 [batch, C, H, W], pixels 0..255, H = W = preprocessing.img_size, C = preprocessing.channels. "
    "Make them like sortnet.data.preprocess.image_to_array: decode, EXIF-orient, convert to L (C=1) or RGB (C=3), "
    "shorter side -> img_size with bilinear resize then centre crop (resize='shorter_center_crop'; 'stretch' "
    "resizes both sides). If preprocessing.background is set and an image's 1-px border median is on the other "
    "side of 128, sortnet inverts it (255 - x) first. Normalization and TTA happen inside the graph. "
    "Outputs: probabilities float32 [batch, K] (softmax), logits float32 [batch, K]; K indexes sortnet.classes."
)


class ExportError(SortnetError):
    """An export that cannot be done as asked (missing package, bad option); the message says what to do."""


class InferenceGraph(nn.Module):
    """uint8 [B, C, H, W] -> (probabilities [B, K], logits [B, K]): the model plus TTA averaging and softmax."""

    def __init__(self, model: nn.Module, tta: TTA | None) -> None:
        super().__init__()
        self.model, self.tta = model, tta
        self.eval()  # a new Module starts in training mode; exporters restore that mode onto the wrapped model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.float()
        views = tta_views(x, self.tta)
        # all views in one batch [V*B, C, H, W]: one model call instead of V (runtimes batch far better)
        logits = self.model(torch.cat(views)) if len(views) > 1 else self.model(x)
        logits = logits.reshape(len(views), x.shape[0], -1).mean(0)
        return torch.softmax(logits, dim=1), logits


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' deprecation/constant-folding chatter (not actionable for users)."""
    with warnings.catch_warnings():
        for category in (UserWarning, FutureWarning, DeprecationWarning, torch.jit.TracerWarning):
            warnings.simplefilter("ignore", category)
        yield


def _require(module: str, extra: str = "onnx"):
    try:
        return __import__(module)
    except ImportError as e:
        raise ExportError(f"{module} is not installed; install it with `pip install 'sortnet[{extra}]'` "
                          f"(or `pip install {module}`).") from e


def _graph_and_example(model: nn.Module, meta: dict, tta: bool) -> tuple[InferenceGraph, torch.Tensor]:
    from sortnet.data.preprocess import Preprocessing

    prep = Preprocessing.from_dict(meta["preprocessing"])
    graph = InferenceGraph(model.cpu().float().eval(), TTA.from_dict(meta.get("tta")) if tta else None)
    # batch 2 so the tracer cannot specialise on batch 1; the batch axis is declared dynamic anyway
    example = torch.randint(0, 256, (2, prep.channels, prep.img_size, prep.img_size), dtype=torch.uint8)
    return graph, example


def onnx_metadata(meta: dict, tta: bool, extra: dict | None = None) -> dict[str, str]:
    """The string key/values stored in the ONNX file's metadata_props."""
    full = dict(meta, exported_tta=meta.get("tta") if tta else None, **(extra or {}))
    return {
        "sortnet": json.dumps(full),
        "sortnet.classes": json.dumps(list(meta["classes"])),
        "sortnet.preprocessing": json.dumps(meta["preprocessing"]),
        "sortnet.input": INPUT_CONTRACT,
    }


def set_onnx_metadata(proto, props: dict[str, str]) -> None:
    """Replace/add metadata_props entries of an onnx.ModelProto in place."""
    keep = [p for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def onnx_bytes(model: nn.Module, meta: dict, tta: bool = True) -> bytes:
    """The fp32 ONNX graph (dynamic batch, opset 17) with sortnet metadata, as bytes."""
    onnx = _require("onnx")
    graph, example = _graph_and_example(model, meta, tta)
    buf = io.BytesIO()
    axes = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)}
    with torch.no_grad(), _quiet():
        # dynamo=False: the TorchScript-based exporter needs no onnxscript and handles every sortnet model
        torch.onnx.export(graph, (example,), buf, dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
                          output_names=list(OUTPUT_NAMES), dynamic_axes=axes, do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    proto.doc_string = f"sortnet image classifier ({meta.get('arch')}). {INPUT_CONTRACT}"
    set_onnx_metadata(proto, onnx_metadata(meta, tta))
    return proto.SerializeToString()


def torchscript_bytes(model: nn.Module, meta: dict, tta: bool = True) -> bytes:
    """A traced TorchScript module (same inputs/outputs as the ONNX graph); metadata in extra file sortnet.json."""
    graph, example = _graph_and_example(model, meta, tta)
    extra = {"sortnet.json": json.dumps(dict(meta, exported_tta=meta.get("tta") if tta else None,
                                             input_contract=INPUT_CONTRACT))}
    buf = io.BytesIO()
    with torch.no_grad(), _quiet():
        traced = torch.jit.trace(graph, (example,), check_trace=False)
        torch.jit.save(traced, buf, _extra_files=extra)
    return buf.getvalue()


def default_out(model_path: str | os.PathLike, fmt: str, quantize: str | None = None) -> Path:
    suffix = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}[fmt]
    stem = Path(model_path).with_suffix("")
    return Path(f"{stem}.int8{suffix}" if quantize else f"{stem}{suffix}")


def export_model(model_path: str | os.PathLike, fmt: str = "onnx", out: str | os.PathLike | None = None, *,
                 tta: bool = True, quantize: str | None = None, calibration: str | None = None,
                 max_accuracy_drop: float = 0.5, data_root: str | None = None, progress: bool = False,
                 heldout_images: int = 5000) -> dict:
    """Write the export; returns {"path", "format", "bytes", "quantization"?}. Raises ExportError."""
    from sortnet.modelfile import load_model

    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if quantize not in (None, "none", "int8"):
        raise ExportError(f"--quantize must be int8 or none, got {quantize!r}")
    quantize = None if quantize == "none" else quantize
    if quantize and fmt != "onnx":
        raise ExportError("--quantize int8 is available for --format onnx only")
    model, meta = load_model(model_path)
    out = Path(out) if out else default_out(model_path, fmt, quantize)
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
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, data)
    info["bytes"] = len(data)
    return info


def sample_inputs(meta: dict, n: int = 4, seed: int = 0) -> np.ndarray:
    """Random uint8 [n, C, H, W] inputs of the model's shape (for smoke tests and benchmarks)."""
    prep = meta["preprocessing"]
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, prep["channels"], prep["img_size"], prep["img_size"]), dtype=np.uint8)
