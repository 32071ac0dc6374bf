"""Ingest image files once into an on-disk uint8 cache at training resolution; later runs skip decoding.

Usage:
    from sortnet.data.ingest import ingest
    result = ingest(paths, prep, progress=True)     # decodes what is not cached yet, on every core
    result.images                                    # MappedRows [N, C, S, S] (row i = paths[i])
    result.ok, result.skipped, result.decoded        # good-row mask, bad files with reasons, rows decoded now

Layout: <cache>/<key>/images.u8 (raw rows, C*S*S bytes each), state.bin (a verified cache entry,
data/cacheentry.py: per row 0 to do, 1 ok, 2 bad; bad rows' reasons; the SHA-256 of every block of
rows), manifest.json (shape, preprocessing, complete flag; written for people, never read). key hashes
the file list with sizes and mtimes plus the preprocessing, so changed files or settings make a new cache.
An interrupted ingest resumes from state.bin (saved after the pixels it vouches for are flushed).

Verified like every cache entry, without touching the per-batch read path: images.u8 is hashed in blocks
of BLOCK_BYTES once per ingest() call (threads; the pass also warms the page cache the epochs then read)
and a block whose digest differs (altered or random bytes) goes back to "to do" and is decoded again;
a damaged state.bin reads as missing (everything decoded again); a truncated images.u8 is recreated.
Blocks are sealed (hashed) once all their rows are done; rows of an interrupted ingest are vouched for
by state.bin until the ingest that completes them seals their blocks.
<cache> is $SORTNET_CACHE/ingest (default ~/.cache/sortnet/ingest). Workers write rows with pwrite;
nothing is pickled to disk and no file is mapped (see sortnet.data.mapped).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sortnet.atomic import atomic_write_text
from sortnet.data.cacheentry import read_entry, write_entry
from sortnet.data.dataset import SkippedFile
from sortnet.data.decode import decode_or_reason
from sortnet.data.filecache import cache_root, stat_key
from sortnet.data.mapped import MappedRows
from sortnet.data.preprocess import Preprocessing, image_to_array
from sortnet.parallel import process_map
from sortnet.progress import progress as show

SAVE_SECONDS = 5.0  # progress (status.npy) saved at most this often: bounds work lost to an interrupt
CHUNK_FILES = 32  # files per task sent to a worker
TODO, OK, BAD = 0, 1, 2
BLOCK_BYTES = 4 << 20  # rows hashed together: a damaged byte costs re-decoding at most this much of the cache
HASH_THREADS = 4  # hashlib and pread release the GIL: blocks are hashed in parallel
STATE_FILE = "state.bin"
OLD_STATE_FILES = ("status.npy", "reasons.json")  # sortnet before verified caches: never trusted, removed


@dataclass
class Ingested:
    images: MappedRows  # every row, good or bad (bad rows are zeros)
    ok: np.ndarray  # bool [N]
    skipped: list[SkippedFile]
    decoded: int  # rows decoded by this call (0 when the cache was complete)
    folder: Path


def ingest_key(paths: list[str], prep: Preprocessing, max_pixels: int | None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([prep.img_size, prep.channels, prep.resize, max_pixels]
                        + ([prep.crop] if prep.crop != 1.0 else [])).encode())  # old keys stay valid
    for p in paths:
        h.update(json.dumps([os.path.abspath(p), (stat_key(p) or [-1, -1])[:2]]).encode())
    return h.hexdigest()[:24]


def _decode_rows(task: tuple[list[int], list[str]], file: str, prep: Preprocessing,
                 max_pixels: int | None) -> list[tuple[int, str | None]]:
    """Decode rows and pwrite them into the cache file; (row, None) or (row, reason). Runs in workers."""
    rows, paths = task
    row_bytes = prep.channels * prep.img_size * prep.img_size
    out = []
    fd = os.open(file, os.O_WRONLY)
    try:
        for row, path in zip(rows, paths):
            arr, reason = decode_or_reason(path, max_pixels, convert=functools.partial(image_to_array, prep=prep))
            if arr is not None:
                os.pwrite(fd, arr.tobytes(), row * row_bytes)
            out.append((row, reason))
    finally:
        os.close(fd)
    return out


def block_rows(row_bytes: int) -> int:
    """Rows per hashed block."""
    return max(1, BLOCK_BYTES // max(1, row_bytes))


def _load_state(folder: Path, n: int, per_block: int) -> tuple[np.ndarray, dict[str, str], list[str | None]]:
    """(status, reasons, block digests) from state.bin; all "to do" when it is missing, damaged or another shape."""
    blocks = -(-n // per_block)
    payload = read_entry(folder / STATE_FILE)
    if payload is not None:
        head, _, raw = payload.partition(b"\n")
        try:
            meta = json.loads(head)
            status = np.frombuffer(raw, np.int8).copy()
            if (meta.get("block_rows") == per_block and status.shape == (n,) and len(meta["digests"]) == blocks
                    and np.isin(status, (TODO, OK, BAD)).all()):
                return status, dict(meta["reasons"]), list(meta["digests"])
        except (ValueError, KeyError, TypeError):
            pass
    return np.zeros(n, np.int8), {}, [None] * blocks


def _save_state(folder: Path, images_file: Path, status: np.ndarray, reasons: dict[str, str],
                digests: list[str | None] | None = None) -> None:
    """Write state.bin (a verified entry); digests None: no block sealed yet."""
    fd = os.open(images_file, os.O_RDONLY)
    try:
        os.fsync(fd)  # pixels first: status must never vouch for rows still in flight
    finally:
        os.close(fd)
    n = len(status)
    per_block = block_rows(os.path.getsize(images_file) // n) if n else 1
    if digests is None:
        digests = [None] * -(-n // per_block)
    head = json.dumps({"block_rows": per_block, "digests": digests, "reasons": reasons}).encode()
    write_entry(folder / STATE_FILE, head + b"\n" + status.astype(np.int8).tobytes())


def _hash_blocks(images_file: Path, row_bytes: int, per_block: int, n: int, blocks: list[int]) -> list[str]:
    """SHA-256 (hex) of each listed block of rows of images_file, hashed on HASH_THREADS threads."""
    fd = os.open(images_file, os.O_RDONLY)

    def one(b: int) -> str:
        start = b * per_block * row_bytes
        size = (min(n, (b + 1) * per_block) - b * per_block) * row_bytes
        data = os.pread(fd, size, start)
        return hashlib.sha256(data).hexdigest() if len(data) == size else ""  # short read: never matches
    try:
        with ThreadPoolExecutor(HASH_THREADS) as pool:
            return list(pool.map(one, blocks))
    finally:
        os.close(fd)


def _verify(images_file: Path, status: np.ndarray, reasons: dict, digests: list, row_bytes: int,
            per_block: int) -> int:
    """Blocks whose bytes differ from their digest go back to "to do" (decoded again); their count."""
    sealed = [b for b, d in enumerate(digests) if d is not None]
    damaged = [b for b, d in zip(sealed, _hash_blocks(images_file, row_bytes, per_block, len(status), sealed))
               if d != digests[b]]
    fd = os.open(images_file, os.O_WRONLY) if damaged else None
    try:
        for b in damaged:
            rows = range(b * per_block, min(len(status), (b + 1) * per_block))
            os.pwrite(fd, bytes(len(rows) * row_bytes), rows.start * row_bytes)  # bad rows stay zeros
            status[rows.start:rows.stop] = TODO
            for r in rows:
                reasons.pop(str(r), None)
            digests[b] = None
    finally:
        if fd is not None:
            os.close(fd)
    return len(damaged)


def _seal(images_file: Path, status: np.ndarray, digests: list, row_bytes: int, per_block: int) -> bool:
    """Hash the unsealed blocks whose rows are all done; True when any was sealed."""
    ready = [b for b, d in enumerate(digests)
             if d is None and not (status[b * per_block:(b + 1) * per_block] == TODO).any()]
    for b, d in zip(ready, _hash_blocks(images_file, row_bytes, per_block, len(status), ready)):
        digests[b] = d
    return bool(ready)


def _decode_missing(paths, prep, folder, images_file, status, reasons, digests, progress, max_pixels,
                    workers) -> int:
    todo = np.flatnonzero(status == TODO)
    tasks = [(todo[i:i + CHUNK_FILES].tolist(), [paths[j] for j in todo[i:i + CHUNK_FILES]])
             for i in range(0, len(todo), CHUNK_FILES)]
    work = functools.partial(_decode_rows, file=str(images_file), prep=prep, max_pixels=max_pixels)
    bar = show(total=len(status), initial=len(status) - len(todo), desc="ingesting", unit="img",
               enabled=progress, leave=False, smoothing=0.05)
    last = time.monotonic()
    try:
        for results in process_map(work, tasks, workers=workers, ordered=False, chunksize=1):
            for row, reason in results:
                status[row] = OK if reason is None else BAD
                if reason is not None:
                    reasons[str(row)] = reason
            bar.update(len(results))
            if time.monotonic() - last > SAVE_SECONDS:
                _save_state(folder, images_file, status, reasons, digests)
                last = time.monotonic()
    finally:
        bar.close()
        _save_state(folder, images_file, status, reasons, digests)
    return len(todo)


def _prepare_folder(folder: Path, images_file: Path, n: int, prep: Preprocessing) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    size = n * prep.channels * prep.img_size * prep.img_size
    if not images_file.exists() or images_file.stat().st_size != size:
        with open(images_file, "wb") as f:
            f.truncate(size)  # sparse: disk blocks are allocated as rows are written
        for stale in (STATE_FILE, "manifest.json"):
            (folder / stale).unlink(missing_ok=True)
    for old in OLD_STATE_FILES:
        (folder / old).unlink(missing_ok=True)


def ingest(paths: list[str], prep: Preprocessing, *, cache_dir: str | os.PathLike | None = None,
           progress: bool = False, max_pixels: int | None = None, workers: int | None = None) -> Ingested:
    """Decode `paths` at `prep` into the on-disk cache (resuming or reusing it); see the module docstring."""
    n = len(paths)
    base = Path(cache_dir).expanduser() if cache_dir else cache_root() / "ingest"
    folder = base / ingest_key(paths, prep, max_pixels)
    images_file = folder / "images.u8"
    shape = (n, prep.channels, prep.img_size, prep.img_size)
    _prepare_folder(folder, images_file, n, prep)
    row_bytes = prep.channels * prep.img_size * prep.img_size
    per_block = block_rows(row_bytes)
    status, reasons, digests = _load_state(folder, n, per_block)
    damaged = _verify(images_file, status, reasons, digests, row_bytes, per_block)  # those rows: decoded again
    decoded = 0
    if (status == TODO).any():
        decoded = _decode_missing(paths, prep, folder, images_file, status, reasons, digests, progress, max_pixels,
                                  workers)
        manifest = {"shape": list(shape), "preprocessing": prep.to_dict(), "files": n, "complete": True,
                    "bad": int((status == BAD).sum()), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=2))
    if _seal(images_file, status, digests, row_bytes, per_block) or damaged:
        _save_state(folder, images_file, status, reasons, digests)
    skipped = [SkippedFile(paths[int(r)], reasons.get(str(int(r)), "unreadable")) for r in np.flatnonzero(status == BAD)]
    return Ingested(images=MappedRows(images_file, shape), ok=status == OK, skipped=skipped, decoded=decoded,
                    folder=folder)
