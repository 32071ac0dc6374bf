"""Per-file facts (content hash, perceptual hash, size, mode, format, EXIF rotation, error) cached as JSON.

Usage:
    from sortnet.data.filecache import file_facts_many
    facts = file_facts_many(root, paths, progress=True)    # {path: {"sha256": ..., "phash": ..., ...}}

An entry is reused only while the file's (size, mtime_ns, ctime_ns) are unchanged, so editing a file -
even keeping its size - recomputes it. The cache lives outside the data (never in the user's folders):
$SORTNET_CACHE/check/<hash of the data root>.json, default ~/.cache/sortnet/check. No pickle anywhere.
The file is a verified cache entry (sortnet.data.cacheentry: checksum written with it, checked on read) and
every entry is checked for its shape: a damaged or rewritten cache is recomputed, never trusted.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

from PIL import Image

from sortnet.data.cacheentry import read_entry, write_entry
from sortnet.data.decode import BadImageError, decode_or_reason, open_regular
from sortnet.data.phash import image_signature
from sortnet.parallel import process_map
from sortnet.progress import progress as show

CACHE_VERSION = 4  # 4: the file carries a checksum; 3: files not regular or above the size cap are never read
PARALLEL_MIN_FILES = 200  # below this a process pool costs more (spawn + imports) than it saves
SAVE_EVERY = 5000  # files computed between intermediate cache saves (an interrupted check resumes)
HASH_CHUNK = 1 << 20  # bytes read per step while hashing: memory stays flat for any file size
EXIF_ORIENTATION = 0x0112


def cache_root() -> Path:
    """$SORTNET_CACHE, else ~/.cache/sortnet (shared by the check cache and the ingest cache)."""
    env = os.environ.get("SORTNET_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sortnet"


def stat_key(path: str) -> list[int] | None:
    """[size, mtime_ns, ctime_ns] of a file, or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns), int(st.st_ctime_ns)]


def _header_facts(f) -> dict:
    """Format, original mode, size, frame count and EXIF rotation from the header (no pixel decoding)."""
    out: dict = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # decompression-bomb warnings: decode_image decides
            with Image.open(f) as img:
                out.update(format=img.format, mode=img.mode, width=img.size[0], height=img.size[1],
                           frames=int(getattr(img, "n_frames", 1) or 1))
                try:
                    orient = int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)
                except Exception:  # noqa: BLE001 - a broken EXIF block only loses this fact
                    orient = 1
                out["exif_rotated"] = orient not in (1,)
    except Exception:  # noqa: BLE001 - unreadable headers are reported through decode_image's reason
        pass
    return out


def _hash_and_header(path: str) -> dict:
    """SHA-256 streamed in HASH_CHUNK pieces plus header facts; {"error": reason} for files that are not read."""
    try:
        with open_regular(path) as f:
            h = hashlib.sha256()
            for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
                h.update(chunk)
            f.seek(0)
            return {"error": None, "sha256": h.hexdigest(), **_header_facts(f)}
    except BadImageError as e:  # not a regular file, too large, vanished, permission denied
        return {"error": e.reason}
    except OSError as e:
        return {"error": f"cannot read file ({e.strerror or type(e).__name__})"}


def compute_facts(path: str) -> dict:
    """Facts of one file (runs in worker processes). Reads the file; never writes or changes it."""
    facts = _hash_and_header(path)
    if facts["error"] is not None:
        return facts
    img, facts["error"] = decode_or_reason(path)  # the same decoder training uses: same verdict on the same file
    if img is not None:
        h, facts["rgb"] = image_signature(img)
        facts["phash"] = None if h is None else f"{h:016x}"
        facts["width"], facts["height"] = img.size  # after EXIF rotation
    return facts


class FactCache:
    """JSON file mapping relative path -> [size, mtime_ns, ctime_ns, facts]."""

    def __init__(self, root: Path, file: Path):
        self.root, self.file, self.dirty = root, file, False
        self.entries: dict[str, list] = {}
        raw = read_entry(file)
        try:
            payload = json.loads(raw) if raw is not None else {}
            if payload.get("version") == CACHE_VERSION and payload.get("root") == str(root):
                self.entries = {k: v for k, v in payload["files"].items() if _well_formed(v)}
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # damaged cache: recompute everything

    @classmethod
    def for_root(cls, root: str | os.PathLike) -> "FactCache":
        root = Path(root).expanduser().resolve()
        name = hashlib.sha256(str(root).encode()).hexdigest()[:20]
        return cls(root, cache_root() / "check" / f"{name}.json")

    def rel(self, path: str) -> str:
        return os.path.relpath(os.path.abspath(path), self.root)

    def get(self, path: str, key: list[int] | None) -> dict | None:
        entry = self.entries.get(self.rel(path))
        if key is None or entry is None or entry[:3] != key:
            return None
        return entry[3]

    def put(self, path: str, key: list[int] | None, facts: dict) -> None:
        if key is not None:  # a file that could not be stat'ed is never cached (it may come back)
            self.entries[self.rel(path)] = [*key, facts]
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        payload = {"version": CACHE_VERSION, "root": str(self.root), "files": self.entries}
        if write_entry(self.file, json.dumps(payload, separators=(",", ":")).encode()):
            self.dirty = False  # else: a read-only or full home only costs the next run a recomputation


def _well_formed(entry) -> bool:
    """[size, mtime_ns, ctime_ns, facts] with int stats and a facts dict (anything else is recomputed)."""
    return (isinstance(entry, list) and len(entry) == 4 and all(isinstance(x, int) for x in entry[:3])
            and isinstance(entry[3], dict) and "error" in entry[3])


def _results(todo: list[str], workers: int | None):
    """(path, facts) for each path, in a process pool when there are many."""
    yield from zip(todo, process_map(compute_facts, todo, workers=workers, min_items=PARALLEL_MIN_FILES + 1))


def _depends_on_moment(error: str | None) -> bool:
    """Errors re-checked next time instead of cached: the file may come back, be unlocked, or the cap be raised."""
    return bool(error) and (error in ("file vanished", "permission denied") or error.startswith("file too large"))


def file_facts_many(root: str | os.PathLike, paths: list[str], *, progress: bool = False,
                    workers: int | None = None) -> tuple[dict[str, dict], int]:
    """({path: facts} for every path, number of files actually computed); cached files cost one stat."""
    cache = FactCache.for_root(root)
    out: dict[str, dict] = {}
    keys: dict[str, list[int] | None] = {}
    todo: list[str] = []
    for p in paths:
        keys[p] = stat_key(p)
        hit = cache.get(p, keys[p])
        if hit is not None:
            out[p] = hit
        else:
            todo.append(p)
    bar = show(total=len(todo), desc="checking", unit="file", enabled=progress and bool(todo), leave=False)
    try:
        for n, (p, facts) in enumerate(_results(todo, workers), 1):
            out[p] = facts
            if not _depends_on_moment(facts.get("error")):
                cache.put(p, keys[p], facts)
            bar.update(1)
            if n % SAVE_EVERY == 0:
                cache.save()
    finally:
        bar.close()
        cache.save()
    return out, len(todo)
