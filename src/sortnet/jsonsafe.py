"""JSON that every parser accepts: non-finite floats (NaN, inf) become null instead of bare NaN/Infinity,
and text holding bytes that are not UTF-8 (file names) is written in sortnet's one form, textsafe.utf8_name.

Python's json writes NaN and Infinity, which are not JSON (JavaScript's JSON.parse, jq and most other
parsers reject the whole document). Every JSON sortnet writes goes through here: `predict --json`,
`evaluate --json`, `check --json`, metrics.json, run.json and the HTTP server's responses.

Usage:
    text = dumps(metrics, indent=2)        # json.dumps(..., allow_nan=False) after finite_or_null
    payload = finite_or_null(result)       # plain containers with NaN/inf replaced by None
"""
from __future__ import annotations

import json
import math

from sortnet.textsafe import utf8_name


def finite_or_null(obj):
    """A copy of obj (dicts, lists, tuples, scalars; numpy scalars included) with NaN/inf floats as None."""
    if isinstance(obj, float) or type(obj).__name__ in ("float32", "float64", "float16"):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, str):
        return utf8_name(obj)  # a lone surrogate is rejected by strict JSON parsers
    if isinstance(obj, dict):
        return {utf8_name(k) if isinstance(k, str) else k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def dumps(obj, **kwargs) -> str:
    """json.dumps that never writes NaN/Infinity (they become null)."""
    return json.dumps(finite_or_null(obj), allow_nan=False, **kwargs)
