"""Frozen-backbone features of an image set, for several views of each image, batched on every core.

Views (each one forward pass per image): "orig", "flip" (mirrored), "crop1", "crop2", ... (a seeded
random-resized crop, area 40-100%, mirrored for every other image). Evaluation uses orig + flip, which
is exactly the model file's flip TTA: averaging a linear head's logits over views = the head applied
to the averaged features.

Backends: on the CPU, onnxruntime when installed (EfficientNet-Lite0 at 224 px: 17.8 img/s against
2.6 img/s for PyTorch eager on the same loaded 2-core machine; BENCHMARKS.md), else PyTorch with the
model in eval mode; on a GPU, PyTorch. A progress bar shows images/s.

Usage:
    extractor = FeatureExtractor(model, device)           # model: a SortnetModel (normalize + body)
    extractor = FeatureExtractor(model, device, onnx_cache=path)   # the exported graph kept for the next run
    feats = extractor.extract(images_uint8, ["orig", "flip"], progress=True)   # float32 [V, N, F]
"""
from __future__ import annotations

import io
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sortnet.data.cacheentry import read_entry, remove_entry, write_entry
from sortnet.parallel import usable_cores
from sortnet.progress import progress as show
from sortnet.training.augment import random_resized_crop

EVAL_VIEWS = ("orig", "flip")
CROP_SCALE = (0.4, 1.0)  # area fraction of a crop view: gentler than training's 0.35 (one fixed draw per image)
BATCH_BYTES = 12 << 20  # float32 input bytes per extraction batch (~20 images at 224 px)


def train_views(count: int) -> tuple[str, ...]:
    """orig, flip, then crop views: count >= 1."""
    return (("orig", "flip") + tuple(f"crop{i}" for i in range(1, max(1, count - 1))))[:max(1, count)]


def view_batch(x: torch.Tensor, view: str, start: int, seed: int = 0) -> torch.Tensor:
    """float [B, C, H, W] pixels (0..255) of one view of uint8 rows start..start+B (deterministic per view)."""
    x = x.float()
    if view == "orig":
        return x
    if view == "flip":
        return x.flip(-1)
    if not view.startswith("crop"):
        raise ValueError(f"unknown view {view!r}")
    k = int(view.removeprefix("crop"))
    gen = torch.Generator().manual_seed(seed * 1_000_003 + k * 7919 + start)
    rows = torch.arange(start, start + len(x))
    x = torch.where(((rows + k) % 2 == 1)[:, None, None, None], x.flip(-1), x)
    return random_resized_crop(x, gen, scale=CROP_SCALE)


class FeatureGraph(nn.Module):
    """float pixels [B, C, H, W] (0..255) -> features [B, F]: the model's normalize + body (what is exported)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.normalize, self.body = model.normalize, model.body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))


def _export(graph: FeatureGraph, example: torch.Tensor, cache_file: Path | None) -> bytes | None:
    """The ONNX graph (from cache_file when it is there and verified; the export takes ~5-10 s on 2 cores),
    None if the export fails."""
    cached = read_entry(cache_file) if cache_file is not None else None
    if cached is not None:
        return cached
    buf = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter chatter (tracer warnings about the "same" padding sizes)
            torch.onnx.export(graph, (example,), buf, dynamo=False, opset_version=17, input_names=["x"],
                              output_names=["features"], dynamic_axes={"x": {0: "batch"}, "features": {0: "batch"}})
    except Exception:  # noqa: BLE001 - any export problem: fall back to PyTorch, which always works
        return None
    if cache_file is not None:
        write_entry(cache_file, buf.getvalue())  # a full or read-only cache only costs the next run the export
    return buf.getvalue()


def _onnx_session(graph: FeatureGraph, example: torch.Tensor, cache_file: Path | None):
    """An onnxruntime session of graph, or None when onnxruntime/onnx is missing or the export fails."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    data = _export(graph, example, cache_file)
    if data is None:
        return None
    try:
        return _session(ort, data)
    except Exception:  # noqa: BLE001 - a graph onnxruntime refuses (verified, yet unusable): export it afresh
        if cache_file is not None:
            remove_entry(cache_file)
        data = _export(graph, example, cache_file)
        try:
            return _session(ort, data) if data is not None else None
        except Exception:  # noqa: BLE001 - PyTorch computes the same features, only slower
            return None


def _session(ort, data: bytes):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads, opts.inter_op_num_threads = usable_cores(), 1
    # no busy-waiting between operators: on a shared machine spinning threads steal the cores the work
    # needs (EfficientNet-Lite0 at load 10 on 2 cores: 14.8 img/s without spinning, 8.9 with)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only: no onnxruntime warnings on the user's stderr
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


class FeatureExtractor:
    """Features of a frozen model's body; `backend` says which runtime computes them."""

    def __init__(self, model: nn.Module, device: torch.device, dtype: torch.dtype | None = None,
                 runtime: str = "auto", onnx_cache: Path | None = None) -> None:
        self.graph = FeatureGraph(model).eval()
        self.device, self.dtype, self.runtime, self.onnx_cache = device, dtype, runtime, onnx_cache
        self.session, self.backend = None, "pending"  # chosen at the first batch (its shape is the example)
        self.seconds, self.images_per_second = 0.0, 0.0

    def _ensure_backend(self, example: torch.Tensor) -> None:
        if self.backend != "pending":
            return
        if self.runtime != "torch" and self.device.type == "cpu":
            self.session = _onnx_session(self.graph.cpu(), example[:2].cpu(), self.onnx_cache)
        self.backend = "onnxruntime" if self.session is not None else "torch"
        if self.session is None:
            self.graph.to(self.device)

    @torch.no_grad()
    def _run(self, x: torch.Tensor) -> np.ndarray:
        if self.session is not None:
            return self.session.run(None, {"x": x.numpy()})[0]
        from sortnet.device import autocast_context

        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        with autocast_context(self.device, self.dtype):
            return self.graph(x).float().cpu().numpy()

    def extract(self, images, views: tuple[str, ...] | list[str], progress: bool = False, seed: int = 0,
                desc: str = "features") -> np.ndarray:
        """float32 [V, N, F] features of uint8 images [N, C, H, W] (array, memmap or on-disk rows)."""
        n = len(images)
        per_image = 4 * int(np.prod(images.shape[1:]))
        batch = int(max(1, min(64, BATCH_BYTES // per_image)))
        out: np.ndarray | None = None
        t0 = time.perf_counter()
        with show(total=n * len(views), desc=desc, unit="img", enabled=progress, leave=False) as bar:
            for start in range(0, n, batch):
                raw = torch.as_tensor(np.asarray(images[start:start + batch]))
                self._ensure_backend(raw.float())
                for v, view in enumerate(views):
                    feats = self._run(view_batch(raw, view, start, seed))
                    if out is None:
                        out = np.empty((len(views), n, feats.shape[1]), np.float32)
                    out[v, start:start + len(raw)] = feats
                    bar.update(len(raw))
        self.seconds = time.perf_counter() - t0
        self.images_per_second = n * len(views) / max(self.seconds, 1e-9)
        return out if out is not None else np.zeros((len(views), 0, 0), np.float32)
