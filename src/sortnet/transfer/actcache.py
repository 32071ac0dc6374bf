"""On-disk cache of a frozen backbone's intermediate activations (the input of its last blocks), for partial
fine-tuning: the frozen front of the network runs once per image and view, only the tail trains.

Layout: $SORTNET_CACHE/activations/<key>.safetensors, one file per view of a set: tensor "activations"
float16 [N, C, H, W] (bf16 would keep the range but only 8 mantissa bits; these post-ReLU6 / projection
maps are small numbers where fp16's 11 bits are exact enough and the range is ample), metadata {"view",
"split", "sha256" of the tensor's bytes}. The key is a SHA-256 over the backbone (architecture + weights'
SHA-256), the split point (blocks left to train), the preprocessing (size, channels, resize, crop,
normalization), the view (name, seed) and every row (path + size + mtime, or the pixels: featcache's
rows digest). Another backbone, split point, preprocessing or file set gives another key; an entry whose
shape or checksum does not match is recomputed. Writes are atomic.

Memory: the activations stay in RAM as float16 while the tail trains; `activation_bytes` estimates them
before extraction so the split point can be chosen to fit (MEMORY_SHARE of the available memory).

Usage:
    front, tail = body.split(4)
    acts, hits = cached_activations(train_set, front_extractor, backbone, prep, split=4, views=("orig", "flip"))
    # acts: torch.float16 [V, N, C, H, W]
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sortnet.atomic import atomic_path
from sortnet.data.dataset import ImageSet
from sortnet.data.filecache import cache_root
from sortnet.data.preprocess import Preprocessing
from sortnet.transfer.featcache import _rows_digest

ACT_CACHE_VERSION = 1
MEMORY_SHARE = 0.4  # of the available RAM, at most, for the activations of all splits and views
BYTES_PER_VALUE = 2  # float16


def activations_dir() -> Path:
    return cache_root() / "activations"


class FrontGraph(nn.Module):
    """What the extractor runs for activations: normalize + the frozen front, flattened to [B, C*H*W]
    (FeatureExtractor's contract is [B, F]; `unflatten` gives the maps back)."""

    def __init__(self, normalize: nn.Module, front: nn.Module) -> None:
        super().__init__()
        self.normalize, self.body = normalize, nn.Sequential(front, nn.Flatten(1))


def activation_shape(front: nn.Module, channels: int, img_size: int) -> tuple[int, int, int]:
    """(C, H, W) of the front's output for one image (one tiny forward pass)."""
    with torch.no_grad():
        return tuple(front.eval()(torch.zeros(1, channels, img_size, img_size)).shape[1:])


def activation_bytes(shape: tuple[int, ...], images: int, views: int) -> int:
    return int(np.prod(shape)) * images * views * BYTES_PER_VALUE


def available_memory() -> int:
    """Bytes of RAM available now (MemAvailable), or 4 GiB where /proc/meminfo cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 4 << 30


def activations_key(data: ImageSet, backbone: dict, prep: Preprocessing, split: int, view: str, seed: int) -> str:
    parts = {"version": ACT_CACHE_VERSION, "backbone": backbone, "split": split, "view": view, "seed": seed,
             "prep": [prep.img_size, prep.channels, prep.resize, prep.crop, list(prep.mean), list(prep.std)],
             "rows": _rows_digest(data)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def front_graph_key(backbone: dict, prep: Preprocessing, split: int) -> str:
    """Key of the exported front graph (ONNX): weights + split + input size + normalization."""
    parts = {"version": ACT_CACHE_VERSION, "backbone": backbone, "split": split,
             "prep": [prep.img_size, prep.channels, list(prep.mean), list(prep.std)]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def _read(path: Path, n: int, shape: tuple[int, ...]) -> torch.Tensor | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            acts, meta = f.get_tensor("activations"), f.metadata() or {}
    except Exception:  # noqa: BLE001 - missing or damaged: recompute
        return None
    if tuple(acts.shape) != (n, *shape) or acts.dtype != torch.float16 or meta.get("sha256") != _digest(acts):
        return None
    return acts


def _write(path: Path, acts: torch.Tensor, view: str, split: int) -> None:
    from safetensors.torch import save_file

    try:
        with atomic_path(path) as tmp:
            save_file({"activations": acts.contiguous()}, str(tmp),
                      metadata={"view": view, "split": str(split), "sha256": _digest(acts)})
    except OSError:
        pass  # a full or read-only cache only costs the next run the extraction


def cached_activations(data: ImageSet, extractor, backbone: dict, prep: Preprocessing, split: int,
                       shape: tuple[int, ...], views, *, seed: int = 0, progress: bool = False,
                       desc: str = "activations") -> tuple[torch.Tensor, list[str]]:
    """(float16 [V, N, C, H, W], the views read from the cache); missing views are computed and stored."""
    n = len(data)
    out = torch.empty((len(views), n, *shape), dtype=torch.float16)
    hits = []
    for v, view in enumerate(views):
        path = activations_dir() / f"{activations_key(data, backbone, prep, split, view, seed)}.safetensors"
        found = _read(path, n, shape)
        if found is None:  # one view at a time: float32 only for one view's worth of rows
            flat = extractor.extract(data.images, [view], progress=progress, seed=seed, desc=f"{desc} ({view})")[0]
            found = torch.from_numpy(flat).reshape(n, *shape).half()
            _write(path, found, view, split)
        else:
            hits.append(view)
        out[v] = found
    return out, hits
