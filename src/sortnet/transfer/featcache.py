"""On-disk cache of frozen-backbone features: computed once per (files, backbone, preprocessing, views).

Layout: $SORTNET_CACHE/features/<key>.safetensors (default ~/.cache/sortnet/features), one file per view
of a set: tensor "features" float16 [N, F] (ReLU6/ReLU features lose nothing that matters in fp16; half
the disk), metadata {"view", "backbone"}. The key is a SHA-256 over
  - the backbone: architecture + SHA-256 of its pretrained weights,
  - the preprocessing: size, channels, resize mode, centre crop, normalization,
  - the view (name, seed, CACHE_VERSION): a run asking for more views reuses the ones already cached,
  - every row: absolute path + size + mtime (image files), or the pixels' hash (sets without files).
Editing, adding or removing a file, other weights, another size or other views give another key: a stale
entry is never read. Every entry is a verified cache entry (sortnet.data.cacheentry: SHA-256 written with
it, checked on read) and its features must be finite: a damaged, rewritten or NaN entry is recomputed. The
backbone's exported ONNX graph is kept next to them as <backbone_key>.onnx, verified the same way (its
export takes seconds; transfer/extract.py reads it back).

Usage:
    feats, hits = cached_features(train_set, extractor, backbone={"arch": ..., "sha256": ...}, prep=prep,
                                  views=("orig", "flip"), progress=True)      # [2, N, F], views found cached
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from sortnet.data.cacheentry import read_entry, remove_entry, write_entry
from sortnet.data.dataset import ImageSet
from sortnet.data.filecache import cache_root, stat_key
from sortnet.data.preprocess import Preprocessing

CACHE_VERSION = 2  # 2: entries carry a checksum (sortnet.data.cacheentry)
HASH_CHUNK_ROWS = 256


def features_dir() -> Path:
    return cache_root() / "features"


def _rows_digest(data: ImageSet) -> str:
    h = hashlib.sha256()
    if data.paths is not None:
        for p in data.paths:
            h.update(json.dumps([os.path.abspath(p), (stat_key(p) or [-1, -1])[:2]]).encode())
    else:  # built-in sets: the pixels themselves (a few hundred MB/s)
        for start in range(0, len(data), HASH_CHUNK_ROWS):
            h.update(np.ascontiguousarray(np.asarray(data.images[start:start + HASH_CHUNK_ROWS])).tobytes())
    h.update(str(tuple(data.images.shape)).encode())
    return h.hexdigest()


def backbone_key(backbone: dict, prep: Preprocessing) -> str:
    """Key of a frozen backbone's exported graph: weights + input size + normalization."""
    parts = {"version": CACHE_VERSION, "backbone": backbone,
             "prep": [prep.img_size, prep.channels, list(prep.mean), list(prep.std)]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def features_key(data: ImageSet, backbone: dict, prep: Preprocessing, view: str, seed: int = 0) -> str:
    parts = {"version": CACHE_VERSION, "backbone": backbone, "view": view, "seed": seed,
             "prep": [prep.img_size, prep.channels, prep.resize, prep.crop, list(prep.mean), list(prep.std)],
             "rows": _rows_digest(data)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _read(path: Path, n: int) -> np.ndarray | None:
    """float32 [n, F] features of a verified, finite entry; None (and the entry removed) otherwise."""
    from safetensors.torch import load

    payload = read_entry(path)
    if payload is None:
        return None
    try:
        feats = load(payload)["features"].float().numpy()
    except Exception:  # noqa: BLE001 - a checksummed payload that still does not parse: recompute
        feats = None
    if feats is None or feats.ndim != 2 or feats.shape[0] != n or not np.isfinite(feats).all():
        remove_entry(path)
        return None
    return feats


def _write(path: Path, feats: np.ndarray, view: str, backbone: dict) -> None:
    from safetensors.torch import save

    if not np.isfinite(feats).all():
        return  # never cache NaN/infinite features: the next run computes them again
    payload = save({"features": torch.from_numpy(np.ascontiguousarray(feats)).half()},
                   metadata={"view": view, "backbone": json.dumps(backbone)})
    write_entry(path, payload)  # a full or read-only cache only costs the next run the extraction


def cached_features(data: ImageSet, extractor, backbone: dict, prep: Preprocessing, views, *, seed: int = 0,
                    progress: bool = False, desc: str = "features") -> tuple[np.ndarray, list[str]]:
    """(float32 [V, N, F] features, the views read from the cache); missing views are computed and stored."""
    paths = {v: features_dir() / f"{features_key(data, backbone, prep, v, seed)}.safetensors" for v in views}
    found = {v: _read(p, len(data)) for v, p in paths.items()}
    hits = [v for v in views if found[v] is not None]
    todo = [v for v in views if found[v] is None]
    if todo:
        fresh = extractor.extract(data.images, todo, progress=progress, seed=seed, desc=desc)
        for v, feats in zip(todo, fresh):
            _write(paths[v], feats, v, backbone)
            found[v] = feats.astype(np.float16).astype(np.float32)  # exactly what a cache hit returns
    return np.stack([found[v] for v in views]) if views else np.zeros((0, len(data), 0), np.float32), hits
