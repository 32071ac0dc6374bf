"""SortnetError: the base of every error a user can cause (bad data, settings, files, missing extras).

The CLI catches SortnetError (and FileNotFoundError) and prints its message without a traceback, so a
new error type only has to subclass it. This module imports nothing from sortnet (no cycles).

Usage:
    class DataError(SortnetError, ValueError): ...
    raise DataError("no images in photos/; expected photos/<class>/*.jpg")
"""
from __future__ import annotations


class SortnetError(Exception):
    """A problem the user can fix; the message says what to do."""


USER_ERRORS: tuple[type[BaseException], ...] = (SortnetError, FileNotFoundError)
