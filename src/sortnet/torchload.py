"""torch.load for files from outside: weights-only (never a full unpickle), failures in sortnet's words.

torch's refusal message suggests retrying with `weights_only=False`, which would run any code the file
holds: sortnet never repeats that hint. The reason is the first line of torch's message, or, for a
refused pickle, what it means.

Usage:
    state = load_weights_only(path)          # raises what torch raises
    except Exception as e: why = load_failure_reason(e)
"""
from __future__ import annotations

import os

REFUSED = ("holds Python objects other than tensors and plain values; refused without unpickling, since "
           "loading them could run code")
MAX_REASON = 160


def load_weights_only(path: str | os.PathLike, **kwargs):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True, **kwargs)


def load_failure_reason(error: BaseException) -> str:
    """A short reason for a failed weights-only load that never suggests weights_only=False."""
    text = str(error)
    if "weights_only" in text or "Weights only load failed" in text or "Unsupported global" in text:
        return REFUSED
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first[:MAX_REASON]}" if first else type(error).__name__
