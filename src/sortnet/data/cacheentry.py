"""Verified cache entries: every cache file carries the SHA-256 of its payload, checked on every read.

A cache entry is trusted only when its checksum matches: a truncated, rewritten or random file (or one
made by an older sortnet) reads as "missing" and is recomputed, never parsed. Layout of an entry file:
MAGIC (16 bytes) + SHA-256 of the payload (32 bytes) + payload. Writes are atomic; a full or read-only
cache only costs the next run the computation (write_entry returns False).

Usage:
    write_entry(path, payload_bytes)
    payload = read_entry(path)          # bytes, or None when missing, not a regular file, or damaged
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

from sortnet.atomic import OutputError, atomic_path

MAGIC = b"sortnet-cache-1\n"
DIGEST_BYTES = 32


def write_entry(path: str | os.PathLike, payload: bytes) -> bool:
    """Write payload with its checksum, atomically; False when the cache cannot be written."""
    try:
        with atomic_path(Path(path)) as tmp:
            with open(tmp, "wb") as f:
                f.write(MAGIC)
                f.write(hashlib.sha256(payload).digest())
                f.write(payload)
    except (OSError, OutputError):
        return False
    return True


def read_entry(path: str | os.PathLike) -> bytes | None:
    """The payload when path is a regular file whose checksum matches, else None (recompute it)."""
    with contextlib.suppress(OSError):
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        with open(path, "rb") as f:
            head = f.read(len(MAGIC) + DIGEST_BYTES)
            payload = f.read()
        if head[:len(MAGIC)] == MAGIC and hashlib.sha256(payload).digest() == head[len(MAGIC):]:
            return payload
    return None


def remove_entry(path: str | os.PathLike) -> None:
    """Drop a damaged entry (a regular file only), so that the next write starts clean."""
    with contextlib.suppress(OSError):
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
