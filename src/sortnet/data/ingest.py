"""Ingest image files once into an on-disk uint8 cache at training resolution; later runs skip decoding.

Usage:
    from sortnet.data.ingest import ingest
    result = ingest(paths, prep, progress=True)     # decodes what is not cached yet, on every core
    result.images                                    # MappedRows [N, C, S, S] (row i = paths[i])
    result.ok, result.skipped, result.decoded        # good-row mask, bad files with reasons, rows decoded now

Layout: <cache>/<key>/images.u8 (raw rows, C*S*S bytes each), status.npy (per row: 0 to do, 1 ok, 2 bad),
reasons.json (bad rows' reasons), manifest.json (shape, preprocessing, complete flag). key hashes the
file list with sizes and mtimes plus the preprocessing, so changed files or settings make a new cache.
An interrupted ingest resumes from status.npy (saved after the pixels it vouches for are flushed).
<cache> is $SORTNET_CACHE/ingest (default ~/.cache/sortnet/ingest). Workers write rows with pwrite;
nothing is pickled to disk and no file is mapped (see sortnet.data.mapped).
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sortnet.atomic import atomic_path, atomic_write_text
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


def _load_state(folder: Path, n: int) -> tuple[np.ndarray, dict[str, str]]:
    try:
        status = np.load(folder / "status.npy", allow_pickle=False)
        reasons = json.loads((folder / "reasons.json").read_text())
        if status.shape == (n,) and status.dtype == np.int8:
            return status, reasons
    except (OSError, ValueError):
        pass
    return np.zeros(n, np.int8), {}


def _save_state(folder: Path, images_file: Path, status: np.ndarray, reasons: dict[str, str]) -> None:
    fd = os.open(images_file, os.O_RDONLY)
    try:
        os.fsync(fd)  # pixels first: status must never vouch for rows still in flight
    finally:
        os.close(fd)
    buf = io.BytesIO()
    np.save(buf, status, allow_pickle=False)
    with atomic_path(folder / "status.npy") as tmp:
        tmp.write_bytes(buf.getvalue())
    atomic_write_text(folder / "reasons.json", json.dumps(reasons))


def _decode_missing(paths, prep, folder, images_file, status, reasons, progress, max_pixels, workers) -> int:
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
                _save_state(folder, images_file, status, reasons)
                last = time.monotonic()
    finally:
        bar.close()
        _save_state(folder, images_file, status, reasons)
    return len(todo)


def _prepare_folder(folder: Path, images_file: Path, n: int, prep: Preprocessing) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    size = n * prep.channels * prep.img_size * prep.img_size
    if not images_file.exists() or images_file.stat().st_size != size:
        with open(images_file, "wb") as f:
            f.truncate(size)  # sparse: disk blocks are allocated as rows are written
        for stale in ("status.npy", "reasons.json", "manifest.json"):
            (folder / stale).unlink(missing_ok=True)


def ingest(paths: list[str], prep: Preprocessing, *, cache_dir: str | os.PathLike | None = None,
           progress: bool = False, max_pixels: int | None = None, workers: int | None = None) -> Ingested:
    """Decode `paths` at `prep` into the on-disk cache (resuming or reusing it); see the module docstring."""
    n = len(paths)
    base = Path(cache_dir).expanduser() if cache_dir else cache_root() / "ingest"
    folder = base / ingest_key(paths, prep, max_pixels)
    images_file = folder / "images.u8"
    shape = (n, prep.channels, prep.img_size, prep.img_size)
    _prepare_folder(folder, images_file, n, prep)
    status, reasons = _load_state(folder, n)
    decoded = 0
    if (status == TODO).any():
        decoded = _decode_missing(paths, prep, folder, images_file, status, reasons, progress, max_pixels, workers)
        manifest = {"shape": list(shape), "preprocessing": prep.to_dict(), "files": n, "complete": True,
                    "bad": int((status == BAD).sum()), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=2))
    skipped = [SkippedFile(paths[int(r)], reasons.get(str(int(r)), "unreadable")) for r in np.flatnonzero(status == BAD)]
    return Ingested(images=MappedRows(images_file, shape), ok=status == OK, skipped=skipped, decoded=decoded,
                    folder=folder)
