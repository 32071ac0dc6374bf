"""The self-contained model file: safetensors weights + JSON metadata. Loading never unpickles.

Layout: one `.safetensors` file whose header metadata holds {"sortnet": <JSON>}; the JSON has the
format version, class names, preprocessing, model arch (registered name or layer spec), training
config, final metrics, sortnet version and a SHA-256 of the weights (catches tampering and bit rot).

Usage:
    save_model("run/model.safetensors", model, meta)
    model, meta = load_model("run/model.safetensors")
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from sortnet.atomic import atomic_write_bytes
from sortnet.errors import SortnetError
from sortnet.models.base import SortnetModel
from sortnet.models.registry import create_model

FORMAT_VERSION = 1
META_KEY = "sortnet"


class ModelFileError(SortnetError):
    """The model file is missing, truncated, tampered with, or not a sortnet model."""


def _weights_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_tensors(model: SortnetModel) -> dict[str, torch.Tensor]:
    """state_dict as contiguous CPU tensors (safetensors refuses shared or strided storage)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def save_model(path: str | os.PathLike, model: SortnetModel, meta: dict) -> Path:
    """Write weights + metadata atomically; meta needs classes, preprocessing, arch."""
    for key in ("classes", "preprocessing", "arch"):
        if key not in meta:
            raise ValueError(f"model metadata needs {key!r}")
    tensors = model_tensors(model)
    from sortnet import __version__

    full = dict(meta, format_version=FORMAT_VERSION, sortnet_version=__version__)
    full["weights_sha256"] = _weights_digest(tensors)
    data = st_save(tensors, metadata={META_KEY: json.dumps(full)})
    path = Path(path)
    atomic_write_bytes(path, data)
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata alone (cheap: reads only the header)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}. Train one with `sortnet train DATA`.")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{path} is not a readable safetensors model file ({e}); it may be truncated.") from e
    if META_KEY not in header:
        raise ModelFileError(f"{path} is a safetensors file but not a sortnet model (no {META_KEY!r} metadata).")
    try:
        meta = json.loads(header[META_KEY])
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path}: sortnet metadata is not valid JSON ({e}).") from e
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model format {version!r}; this sortnet reads up to {FORMAT_VERSION}. Upgrade sortnet."
        )
    return meta


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path}: weights are unreadable ({e}); the file may be truncated.") from e


def load_model(path: str | os.PathLike, verify: bool = True) -> tuple[SortnetModel, dict]:
    """Rebuild the model from the file alone (no training code, no pickle); eval mode, CPU."""
    from sortnet.data.preprocess import Preprocessing

    path = Path(path)
    meta = read_metadata(path)
    tensors = _read_tensors(path)
    if verify and meta.get("weights_sha256") != _weights_digest(tensors):
        raise ModelFileError(f"{path}: weights do not match their checksum; the file was modified or corrupted.")
    prep = Preprocessing.from_dict(meta["preprocessing"])
    try:
        model = create_model(meta["arch"], prep.channels, len(meta["classes"]), prep.img_size, prep.mean, prep.std)
        model.load_state_dict(tensors, strict=True)
    except (RuntimeError, ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: weights do not fit model {meta.get('arch')!r} ({e}).") from e
    model.eval()
    return model, meta
