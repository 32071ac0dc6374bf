"""Request limits for `sortnet serve`: body size, image pixels, safe decoding, bounded concurrency + timeout.

Usage:
    gate = Gate(workers=2, queue=32)
    body = await read_body(request, max_bytes=10_000_000)      # HTTPException 413 before any decoding
    img = decode_upload(body, max_pixels=40_000_000)            # UploadError (-> 400) for bombs / non-images
    result = await gate.run(fn, timeout_s=10.0)                 # Busy (-> 503) when workers + queue are full
"""
from __future__ import annotations

import asyncio
import io
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

from fastapi import HTTPException, Request
from PIL import Image, ImageOps, UnidentifiedImageError

from sortnet.data.decode import to_rgb_or_l

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
    """The whole request body, refusing (413) as soon as it is known to exceed max_bytes."""
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


def decode_upload(data: bytes, max_pixels: int) -> Image.Image:
    """Bytes -> EXIF-oriented "RGB"/"L" image; UploadError for non-images and for > max_pixels (from the header)."""
    if not data:
        raise UploadError("empty upload: send an image file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)
            w, h = img.size
            if w * h > max_pixels or w <= 0 or h <= 0:
                raise UploadError(f"image too large: more than {max_pixels:,} pixels")
            img.load()
        except Image.DecompressionBombError as e:  # Pillow's own guard (2x its global limit)
            raise UploadError(f"image too large: more than {max_pixels:,} pixels") from e
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
            raise UploadError(NOT_AN_IMAGE) from e
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not fail the image; orientation is optional
        pass
    try:
        return to_rgb_or_l(img)
    except Exception as e:  # noqa: BLE001 - odd modes raise assorted errors; the client gets the generic text
        raise UploadError(NOT_AN_IMAGE) from e


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
