"""Device, precision and thread choices, detected once per run.

Usage:
    dev = resolve_device("auto"); dtype = resolve_precision("auto", dev)   # the hardware's candidate: bf16 on
    # AVX-512-bf16 CPUs; training from scratch keeps it only where measured faster (training/precision.py)
    with autocast_context(dev, dtype): logits = model(x)
"""
from __future__ import annotations

import contextlib
import os

import torch

from sortnet.errors import SortnetError
from sortnet.parallel import usable_cores


class DeviceError(SortnetError):
    """The asked-for device does not exist on this machine (or the name is not a device)."""


def resolve_device(name: str = "auto") -> torch.device:
    """torch.device for "auto" | "cpu" | "cuda" | "cuda:N"; DeviceError when it is not usable here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise DeviceError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from e
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"--device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {name} was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    return dev


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 dot products (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool((check and check()) or (amx and amx()))
    except RuntimeError:
        return False


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for plain fp32. "auto" is the hardware's rule (bf16 where a CPU has native bf16,
    bf16/fp16 on a GPU); a from-scratch training run on a CPU measures it against fp32 (training/precision.py)."""
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if name == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else None


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def all_cores():
    """Intra-op threads = usable cores inside the block; the caller's thread count is restored after."""
    before = torch.get_num_threads()
    use_all_cores()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def use_all_cores() -> None:
    """Intra-op threads = usable cores (torch sometimes picks fewer inside containers), shared evenly by the
    processes torchrun started on this machine (LOCAL_WORLD_SIZE)."""
    cores = max(1, usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)


def thread_options(cores: int | None = None) -> list[int]:
    """Thread counts worth timing against each other: all cores, half of them, and one."""
    cores = cores or usable_cores()
    return list(dict.fromkeys([cores, max(1, cores // 2), 1]))
