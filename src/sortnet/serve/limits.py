"""Request limits for `sortnet serve`: body size and read deadline, pixels per image / request / server,
safe decoding, bounded concurrency + timeout, memory handed back after big requests.

Usage:
    gate, budget = Gate(workers=2, queue=32), PixelBudget(200_000_000)
    body = await read_body(request, max_bytes=10_000_000)      # 413 before decoding; under a body deadline
    pixels = upload_pixels(body, max_pixels=40_000_000)        # from the header: UploadError (-> 400) for bombs
    budget.reserve(pixels)                                      # Busy (-> 503) when the server's total is taken
    img = decode_upload(body, max_pixels=40_000_000)            # sortnet.data.decode.decode_bytes, generic errors
    result = await gate.run(fn, timeout_s=10.0)                 # Busy (-> 503) when workers + queue are full
    release_memory()                                            # glibc: return freed heap pages to the OS
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

from fastapi import HTTPException, Request
from PIL import Image

from sortnet.data.decode import BadImageError, decode_bytes, probe_bytes

# Formats accepted from the network: the common photo formats only (less parser surface than all of Pillow's).
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
NOT_AN_IMAGE = "the upload is not a readable image (send PNG, JPEG, WebP, GIF, BMP or TIFF)"


class UploadError(Exception):
    """A bad upload; str(e) is a generic message safe to return to the client (no paths, no library text)."""


class Busy(Exception):
    """All workers and queue slots are taken (-> 503, retry later)."""


class TimedOut(Exception):
    """The request took longer than the server's request timeout (-> 503)."""


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole request body, refusing (413) as soon as it is known to exceed max_bytes.

    Callers bound the time with asyncio.wait_for (the body deadline); nothing here holds a worker slot.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"request body larger than the limit of {max_bytes:,} bytes")
    chunks, total = [], 0
    async for chunk in request.stream():  # chunked uploads have no content-length: count as they arrive
        total += len(chunk)
        if total > max_bytes:
            raise HTTPException(413, f"request body larger than the limit of {max_bytes:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def replay_request(request: Request, body: bytes) -> Request:
    """A Request over the same scope whose body is `body` (already read), so form parsing can run on it."""
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


def _upload_error(e: BadImageError, max_pixels: int) -> UploadError:
    """Generic text for the client: the limit when it is a size problem, never a path or parser message."""
    if e.reason.startswith("image too large"):
        return UploadError(f"image too large: more than {max_pixels:,} pixels")
    if e.reason == "zero-byte file":
        return UploadError("empty upload: send an image file")
    return UploadError(NOT_AN_IMAGE)


def upload_pixels(data: bytes, max_pixels: int) -> int:
    """width * height from the header alone (nothing decoded); UploadError for non-images and > max_pixels."""
    try:
        info = probe_bytes(data, max_pixels, UPLOAD_FORMATS)
    except BadImageError as e:
        raise _upload_error(e, max_pixels) from None
    except Exception:  # noqa: BLE001 - hostile headers raise assorted parser errors; the client gets generic text
        raise UploadError(NOT_AN_IMAGE) from None
    return info.width * info.height


def decode_upload(data: bytes, max_pixels: int) -> Image.Image:
    """Bytes -> EXIF-oriented "RGB"/"L" image (sortnet.data.decode.decode_bytes); UploadError for bad uploads."""
    try:
        return decode_bytes(data, max_pixels, UPLOAD_FORMATS)
    except BadImageError as e:
        raise _upload_error(e, max_pixels) from None
    except Exception:  # noqa: BLE001 - hostile files raise assorted parser errors; the client gets generic text
        raise UploadError(NOT_AN_IMAGE) from None


class PixelBudget:
    """Decoded pixels admitted across all in-flight requests; a request that would exceed the total is Busy.

    Reserved from the image headers before anything is decoded, released when the response is ready,
    so the pixels decoded at once (and the memory they take) are bounded however many clients there are.
    """

    def __init__(self, total: int) -> None:
        self.total, self.used = int(total), 0
        self._lock = threading.Lock()

    def reserve(self, pixels: int) -> None:
        with self._lock:
            if self.used + pixels > self.total:
                raise Busy()
            self.used += pixels

    def release(self, pixels: int) -> None:
        with self._lock:
            self.used -= pixels


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's malloc_trim, or None (musl, macOS, Windows: nothing to call)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter (malloc.h)
MAPPED_FROM_BYTES = 1 << 20  # serve: blocks of 1 MiB and more (upload bodies, decoded images) are mmapped


@functools.lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
        return lib if lib is not None and hasattr(lib, "mallopt") else None
    except OSError:
        return None


def map_large_blocks(threshold: int = MAPPED_FROM_BYTES) -> bool:
    """glibc: serve every block >= threshold bytes from its own mmap, unmapped as soon as it is freed.

    By default glibc raises its mmap threshold after the first large free (up to 32 MiB), so the 5 MB
    bodies and images of later requests land in the heaps of the worker threads' arenas and stay there
    (a plateau ~200 MB above idle after 50 concurrent 5 MB uploads). A fixed threshold keeps them out of the
    heaps: memory goes back to the OS with each response. False where there is no glibc."""
    lib = _libc()
    return bool(lib is not None and lib.mallopt(M_MMAP_THRESHOLD, int(threshold)))


def release_memory() -> bool:
    """Give freed heap pages back to the OS (glibc keeps them after a big decode); True when it could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class Gate:
    """At most `workers` jobs run (in threads) and at most `queue` more wait; beyond that: Busy at once.

    The count covers a request from admission to its response, so a burst beyond capacity is refused
    in microseconds instead of piling up memory and latency.
    """

    def __init__(self, workers: int, queue: int) -> None:
        self.workers, self.capacity = workers, workers + queue
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sortnet-serve")
        self._lock = threading.Lock()
        self.active = 0

    def admit(self) -> None:
        with self._lock:
            if self.active >= self.capacity:
                raise Busy()
            self.active += 1

    def release(self) -> None:
        with self._lock:
            self.active -= 1

    async def run(self, fn, timeout_s: float):
        """fn() on a worker thread, waiting at most timeout_s; a job still queued at the timeout is cancelled."""
        fut = self.pool.submit(fn)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout_s)
        except asyncio.TimeoutError as e:
            fut.cancel()
            raise TimedOut() from e

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
