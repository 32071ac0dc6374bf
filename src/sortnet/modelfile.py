"""The self-contained model file: safetensors weights + JSON metadata. Loading never unpickles.

Layout: one `.safetensors` file whose header metadata holds {"sortnet": <ModelMeta JSON>,
"sortnet.sha256": <SHA-256 of that JSON text>}; the JSON carries a SHA-256 of the weights, so the two
checksums together cover metadata and weights (tampering and bit rot). Format 1 files (no metadata
checksum) still load, with a ModelFormatNote warning.

Loading checks before it allocates: the header size, the metadata checksum and schema (ModelMeta.from_dict),
then the tensor names and shapes the architecture implies (built on torch's "meta" device: no memory)
against those in the file header. Only then are the weights read, checksummed and loaded.

Usage:
    save_model("run/model.safetensors", model, meta)          # meta: a ModelMeta
    model, meta = load_model("run/model.safetensors")
    meta = read_metadata("run/model.safetensors")             # header only (cheap)
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from sortnet.atomic import atomic_write_bytes
from sortnet.jsonsafe import dumps
from sortnet.modelmeta import FORMAT_VERSION, ModelFileError, ModelMeta
from sortnet.models.registry import create_model
from sortnet.version import __version__

__all__ = ["ModelFileError", "ModelFormatNote", "save_model", "load_model", "read_metadata", "model_from_meta",
           "model_tensors", "non_finite_tensors", "FORMAT_VERSION", "META_KEY"]

META_KEY = "sortnet"
META_SHA_KEY = "sortnet.sha256"
MAX_HEADER_BYTES = 16 << 20  # a safetensors header (tensor table + metadata) larger than this is refused unread


class ModelFormatNote(UserWarning):
    """An older model file format: it loads, and the note says what it lacks and how to upgrade it."""


def _weights_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """state_dict as contiguous CPU tensors (safetensors refuses shared or strided storage)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def model_from_meta(meta: ModelMeta, device: str | torch.device | None = None) -> torch.nn.Module:
    """The (untrained) model meta describes: a SortnetModel, or an EnsembleModel of them when meta.ensemble is
    set (sortnet/ensemble/). Device "meta" builds shapes only, allocating nothing. A model whose metadata has
    an `unknown` scorer gets it as submodule `unknown` (its tensors "unknown.*"; sortnet/unknown/scorer.py)."""
    prep = meta.preprocessing
    with torch.device(device or "cpu"):
        if meta.ensemble is not None:
            from sortnet.models.ensemble import ensemble_from_meta

            return ensemble_from_meta(meta)
        model = create_model(meta.arch, prep.channels, meta.num_classes, prep.img_size, prep.mean, prep.std)
        if meta.unknown is not None:
            from sortnet.calibrate import temperature_of
            from sortnet.unknown.scorer import scorer_from_spec

            model.add_module("unknown", scorer_from_spec(meta.unknown, meta.num_classes, temperature_of(meta)))
        return model


def non_finite_tensors(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding NaN or infinity (a diverged training run)."""
    return [name for name, t in tensors.items()
            if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all())]


def save_model(path: str | os.PathLike, model: torch.nn.Module, meta: ModelMeta, *, new: bool = False,
               protect: tuple = ()) -> Path:
    """Write weights + metadata atomically (current format, this sortnet's version, checksums).

    new/protect: as sortnet.atomic (a user-named output: never an existing file, never one of `protect`).
    Never writes NaN/infinite weights (ModelFileError: a diverged run), nor bare NaN in the metadata JSON.
    """
    scorer = "unknown" in dict(model.named_children())  # sortnet/unknown/: tensors and metadata travel together
    if scorer != (meta.unknown is not None):
        raise ValueError(f"model {'has' if scorer else 'lacks'} an unknown scorer but its metadata "
                         f"{'lacks' if scorer else 'has'} one: attach both (sortnet.unknown.attach) or neither")
    tensors = model_tensors(model)
    bad = non_finite_tensors(tensors)
    if bad:
        raise ModelFileError(f"refusing to write {path}: weights {', '.join(bad[:3])} hold NaN or infinity "
                             "(training diverged); train again with a lower --lr")
    full = meta.stamped(__version__).replace(weights_sha256=_weights_digest(tensors))
    text = dumps(full.to_dict())
    data = st_save(tensors, metadata={META_KEY: text, META_SHA_KEY: _text_digest(text)})
    path = Path(path)
    atomic_write_bytes(path, data, new=new, protect=protect)
    return path


def _header_size(path: Path) -> int:
    """Bytes of the safetensors JSON header, read from the 8-byte prefix (before safetensors parses it)."""
    with open(path, "rb") as f:
        prefix = f.read(8)
    if len(prefix) < 8:
        raise ModelFileError(f"{path} is not a readable safetensors model file (only {len(prefix)} bytes); "
                             "it may be truncated.")
    return int.from_bytes(prefix, "little")


def _read_header(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}. Train one with `sortnet train DATA`.")
    size = _header_size(path)
    if size > MAX_HEADER_BYTES:
        raise ModelFileError(f"{path}: header of {size:,} bytes is larger than any sortnet model's "
                             f"({MAX_HEADER_BYTES:,} max); the file is damaged or not a sortnet model.")
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{path} is not a readable safetensors model file ({e}); it may be truncated.") from e


def read_metadata(path: str | os.PathLike) -> ModelMeta:
    """The validated ModelMeta alone (cheap: reads only the header). ModelFileError when anything is off."""
    path = Path(path)
    header = _read_header(path)
    if META_KEY not in header:
        raise ModelFileError(f"{path} is a safetensors file but not a sortnet model (no {META_KEY!r} metadata).")
    text = header[META_KEY]
    if META_SHA_KEY in header and header[META_SHA_KEY] != _text_digest(text):
        raise ModelFileError(f"{path}: metadata does not match its checksum; the file was modified or corrupted.")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path}: sortnet metadata is not valid JSON ({e}).") from e
    meta = ModelMeta.from_dict(raw, where=str(path))
    if meta.format_version >= 2 and META_SHA_KEY not in header:
        raise ModelFileError(f"{path}: format {meta.format_version} metadata has no checksum; the file was "
                             "modified or corrupted.")
    if meta.format_version == 1:
        warnings.warn(f"{path} uses model format 1: its metadata is not covered by a checksum (the weights are). "
                      "Re-save it (sortnet.load(path).save(path2)) to upgrade.", ModelFormatNote, stacklevel=3)
    return meta


def _check_shapes(path: Path, meta: ModelMeta) -> None:
    """Tensor names and shapes the architecture implies == those in the file, checked without allocating."""
    try:
        expected = {k: tuple(v.shape) for k, v in model_from_meta(meta, "meta").state_dict().items()}
    except (ValueError, RuntimeError, TypeError) as e:  # ConfigError / SpecError are ValueErrors
        raise ModelFileError(f"{path}: model {meta.arch!r} cannot be built from its metadata ({e}).") from e
    try:
        with safe_open(str(path), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{path}: tensor table is unreadable ({e}); the file may be truncated.") from e
    want, have = (sum(_numel(s) for s in d.values()) for d in (expected, found))
    if want != have or set(expected) != set(found):
        raise ModelFileError(f"{path}: model {meta.arch!r} has {len(expected)} tensors with {want:,} values, the "
                             f"file holds {len(found)} with {have:,}; metadata and weights do not belong together.")
    bad = next((k for k in sorted(expected) if expected[k] != found[k]), None)
    if bad is not None:
        raise ModelFileError(f"{path}: tensor {bad!r} has shape {list(found[bad])} in the file but model "
                             f"{meta.arch!r} needs {list(expected[bad])}; metadata and weights do not belong together.")


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path}: weights are unreadable ({e}); the file may be truncated.") from e


def load_model(path: str | os.PathLike, verify: bool = True) -> tuple[torch.nn.Module, ModelMeta]:
    """Rebuild the model from the file alone (no training code, no pickle); eval mode, CPU."""
    path = Path(path)
    meta = read_metadata(path)
    _check_shapes(path, meta)
    tensors = _read_tensors(path)
    if verify and meta.weights_sha256 != _weights_digest(tensors):
        raise ModelFileError(f"{path}: weights do not match their checksum; the file was modified or corrupted.")
    bad = non_finite_tensors(tensors)
    if bad:  # files from versions that did not check: every prediction would be NaN
        raise ModelFileError(f"{path}: weights {', '.join(bad[:3])} hold NaN or infinity (a diverged training "
                             "run); train again with a lower --lr")
    try:
        model = model_from_meta(meta)
        model.load_state_dict(tensors, strict=True)
    except (RuntimeError, ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: weights do not fit model {meta.arch!r} ({e}).") from e
    model.eval()
    return model, meta
