"""The exported-graph contract shared by export, quantize and the onnxruntime backend: tensor names,
the input contract text, and the sortnet metadata stored in (and read from) an ONNX file's metadata_props.

Usage:
    props = onnx_metadata(meta, tta=True)                 # {"sortnet": JSON, "sortnet.classes": ..., ...}
    set_onnx_metadata(proto, props)                       # onnx.ModelProto, in place
    meta = read_onnx_metadata(onnx_bytes, "model.onnx")   # ModelMeta (validated), OnnxModelError if absent
"""
from __future__ import annotations

import json
import os

from sortnet.errors import SortnetError
from sortnet.extras import require
from sortnet.modelmeta import ModelMeta

OPSET = 17
INPUT_NAME, OUTPUT_NAMES = "images", ("probabilities", "logits")
UNKNOWN_OUTPUT = "unknown_score"  # a third output, for models with an unknown scorer (sortnet/unknown/)
INPUT_CONTRACT = (
    "images: uint8 [batch, C, H, W], pixels 0..255, H = W = preprocessing.img_size, C = preprocessing.channels. "
    "Make them like sortnet.data.preprocess.image_to_array: decode, EXIF-orient, convert to L (C=1) or RGB (C=3), "
    "shorter side -> img_size / crop (preprocessing.crop, default 1) with bilinear resize then centre crop to "
    "img_size (resize='shorter_center_crop'; 'stretch' "
    "resizes both sides). sortnet's --invert auto inverts (255 - x) only for MNIST-like models (C = 1, "
    "img_size <= 64, preprocessing.background 'dark', crop 1) and only an image whose 1-px border median is >= 128 "
    "and that is nearly grey (sortnet.data.invert); never a colour photo. Normalization and TTA happen inside the graph. "
    "Outputs: probabilities float32 [batch, K] (softmax of logits / sortnet.temperature), logits float32 [batch, K]; "
    "K indexes sortnet.classes. Models with an unknown scorer add unknown_score float32 [batch]: above "
    "sortnet.unknown_threshold means none of the classes (answer 'unknown', closest class = the top one)."
)


class ExportError(SortnetError):
    """An export that cannot be done as asked (bad option, too large an accuracy drop); the message says what to do."""


class OnnxModelError(SortnetError):
    """An .onnx file that is not a readable sortnet export; the message says how to make one."""


def onnx_metadata(meta: ModelMeta, tta: bool) -> dict[str, str]:
    """The string key/values stored in an exported file's metadata_props (the graph's TTA as exported_tta)."""
    full = meta.replace(exported_tta=meta.tta if tta else None)
    props = {
        "sortnet": json.dumps(full.to_dict()),
        "sortnet.classes": json.dumps(list(meta.classes)),
        "sortnet.preprocessing": json.dumps(meta.preprocessing.to_dict()),
        "sortnet.input": INPUT_CONTRACT,
        "sortnet.temperature": json.dumps(meta.calibration["temperature"] if meta.calibration else 1.0),
    }
    if meta.unknown is not None:  # for runtimes that read plain keys rather than the sortnet JSON
        props["sortnet.unknown_threshold"] = json.dumps(meta.unknown["threshold"])
        props["sortnet.unknown_accept"] = json.dumps(meta.unknown.get("accept"))
    return props


def set_onnx_metadata(proto, props: dict[str, str]) -> None:
    """Replace/add metadata_props entries of an onnx.ModelProto in place."""
    keep = [p for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def read_onnx_metadata(data: bytes, where: str | os.PathLike = "ONNX model") -> ModelMeta:
    """The validated sortnet metadata stored in an exported ONNX file's metadata_props."""
    onnx = require("onnx", "onnx")
    try:
        proto = onnx.load_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf decode errors have no stable type
        raise OnnxModelError(f"{where} is not a readable ONNX file; it may be truncated.") from e
    props = {p.key: p.value for p in proto.metadata_props}
    if "sortnet" not in props:
        raise OnnxModelError(f"{where} has no sortnet metadata; export it with `sortnet export MODEL --format onnx`.")
    try:
        raw = json.loads(props["sortnet"])
    except json.JSONDecodeError as e:
        raise OnnxModelError(f"{where}: sortnet metadata is not valid JSON ({e}).") from e
    return ModelMeta.from_dict(raw, where=str(where))
