"""Optional dependencies (the pip extras onnx, serve, video): import one, or say exactly what to install.

Usage:
    onnx = require("onnx", extra="onnx")          # MissingExtraError: pip install 'sortnet[onnx]'
    if installed("onnx", "onnxruntime"): ...     # all importable (found, not imported)
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from sortnet.errors import SortnetError


class MissingExtraError(SortnetError, ImportError):
    """An optional dependency needed by the command is not installed; the message names the pip command."""


def require(module: str, extra: str) -> ModuleType:
    """The imported module, or MissingExtraError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(f"this needs {module}, which is not installed: pip install 'sortnet[{extra}]' "
                                f"(or pip install {module}).") from e


def installed(*modules: str) -> bool:
    """True when every module can be imported (found on the path; nothing is imported)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except (ImportError, ValueError):  # a parent package missing, or a half-installed module
        return False
