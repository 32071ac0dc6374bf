"""Errors raised while finding and loading training/evaluation data.

Usage:
    from sortnet.data.errors import DataError
    raise DataError("no class folders in /data/photos; expected /data/photos/<class>/<image files>")
"""
from __future__ import annotations

from sortnet.errors import SortnetError


class DataError(SortnetError, ValueError):
    """The data the user pointed at cannot be used; the message says what to fix (layout, path, download)."""
