"""The inference graph that exports contain, and its ONNX / TorchScript serialisation (in memory).

    input  "images"        uint8 [batch, C, H, W], 0..255, H = W = preprocessing.img_size
    output "probabilities" float32 [batch, K] (softmax(logits / T), T the model file's calibration temperature;
                           test-time-augmentation views averaged)
    output "logits"        float32 [batch, K] (before the temperature)
    output "unknown_score" float32 [batch] (only for models with an unknown scorer: above the threshold in
                           metadata_props "sortnet.unknown_threshold" = "unknown"; sortnet/unknown/)

The resize is NOT in the graph (it stays bit-identical to training; see onnx_io.INPUT_CONTRACT);
normalization ((x/255 - mean)/std) and TTA are.

Usage:
    data = onnx_bytes(model, meta, tta=True)          # fp32 ONNX, dynamic batch, sortnet metadata inside
    data = torchscript_bytes(model, meta)             # traced module, metadata in extra file sortnet.json
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings

import torch
from torch import nn

from sortnet.extras import require
from sortnet.calibrate import temperature_of
from sortnet.infer.onnx_io import (INPUT_CONTRACT, INPUT_NAME, OPSET, OUTPUT_NAMES, UNKNOWN_OUTPUT, onnx_metadata,
                                   set_onnx_metadata)
from sortnet.modelmeta import ModelMeta
from sortnet.tta import TTA, tta_views


class InferenceGraph(nn.Module):
    """uint8 [B, C, H, W] -> (probabilities [B, K], logits [B, K][, unknown_score [B]]): the model plus TTA
    averaging, the calibration temperature and softmax, and the unknown scorer when the model has one."""

    def __init__(self, model: nn.Module, tta: TTA | None, temperature: float = 1.0) -> None:
        super().__init__()
        self.model, self.tta, self.temperature = model, tta, float(temperature)
        self.scorer = getattr(model, "unknown", None)
        self.eval()  # a new Module starts in training mode; exporters restore that mode onto the wrapped model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = images.float()
        views = tta_views(x, self.tta)
        # all views in one batch [V*B, C, H, W]: one model call instead of V (runtimes batch far better)
        batch = torch.cat(views) if len(views) > 1 else x
        if self.scorer is None:
            logits = self.model(batch).reshape(len(views), x.shape[0], -1).mean(0)
            return torch.softmax(logits / self.temperature, dim=1), logits
        feats = self.model.features(batch)
        feats = feats.reshape(len(views), x.shape[0], -1).mean(0)  # as sortnet.unknown.fit.features_and_logits
        logits = self.model.head(feats)
        return torch.softmax(logits / self.temperature, dim=1), logits, self.scorer(feats, logits)


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' deprecation/constant-folding chatter (not actionable for users)."""
    with warnings.catch_warnings():
        for category in (UserWarning, FutureWarning, DeprecationWarning, torch.jit.TracerWarning):
            warnings.simplefilter("ignore", category)
        yield


def _graph_and_example(model: nn.Module, meta: ModelMeta, tta: bool) -> tuple[InferenceGraph, torch.Tensor]:
    prep = meta.preprocessing
    graph = InferenceGraph(model.cpu().float().eval(), meta.tta if tta else None, temperature_of(meta))
    # batch 2 so the tracer cannot specialise on batch 1; the batch axis is declared dynamic anyway
    example = torch.randint(0, 256, (2, prep.channels, prep.img_size, prep.img_size), dtype=torch.uint8)
    return graph, example


def onnx_bytes(model: nn.Module, meta: ModelMeta, tta: bool = True) -> bytes:
    """The fp32 ONNX graph (dynamic batch, opset 17) with sortnet metadata, as bytes."""
    onnx = require("onnx", "onnx")
    graph, example = _graph_and_example(model, meta, tta)
    buf = io.BytesIO()
    outputs = list(OUTPUT_NAMES) + ([UNKNOWN_OUTPUT] if graph.scorer is not None else [])
    axes = {name: {0: "batch"} for name in (INPUT_NAME, *outputs)}
    with torch.no_grad(), _quiet():
        # dynamo=False: the TorchScript-based exporter needs no onnxscript and handles every sortnet model
        torch.onnx.export(graph, (example,), buf, dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
                          output_names=outputs, dynamic_axes=axes, do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    proto.doc_string = f"sortnet image classifier ({meta.arch}). {INPUT_CONTRACT}"
    set_onnx_metadata(proto, onnx_metadata(meta, tta))
    return proto.SerializeToString()


def torchscript_bytes(model: nn.Module, meta: ModelMeta, tta: bool = True) -> bytes:
    """A traced TorchScript module (same inputs/outputs as the ONNX graph); metadata in extra file sortnet.json."""
    graph, example = _graph_and_example(model, meta, tta)
    full = dict(meta.replace(exported_tta=meta.tta if tta else None).to_dict(), input_contract=INPUT_CONTRACT)
    buf = io.BytesIO()
    with torch.no_grad(), _quiet():
        traced = torch.jit.trace(graph, (example,), check_trace=False)
        torch.jit.save(traced, buf, _extra_files={"sortnet.json": json.dumps(full)})
    return buf.getvalue()
