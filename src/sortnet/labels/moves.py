"""Move an image to another class folder on an explicit user action; every move logged, every move undoable.

The one place sortnet changes a user's data folder, and only when asked (`sortnet check DIR --move-suspects`,
the serve page's "move" button, or this API). Rules:
- inside the data folder only: the file and its new place both resolve under DIR; links are refused;
- never overwrites: when the class folder already has that name, a free one is chosen ("x-1.jpg", ...);
  the move itself is a hard link + unlink (the link fails instead of replacing), or a rename where links
  are not supported, after checking the name is free;
- every move appends one JSON line to DIR/.sortnet-moves.jsonl (a hidden file: never read as an image);
- `undo_moves(DIR)` moves files back, newest first, and logs each undo; a file that changed since its move
  (size or SHA-256) or whose old name is taken is left where it is and reported.

Usage:
    from sortnet.labels.moves import move_to_class, undo_moves, read_moves
    move = move_to_class("photos/", "ants/img_12.jpg", "bees")   # Move(id, src, dst, ...); dst "bees/img_12.jpg"
    undone = undo_moves("photos/")                                # [UndoResult(move, restored, reason)]
    undo_moves("photos/", ids=[move.id])                          # just that one
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from sortnet.errors import SortnetError

LOG_NAME = ".sortnet-moves.jsonl"
SPLIT_DIRS = ("train", "val", "valid", "validation", "test")  # as sortnet.data.folder reads a split layout
MAX_FREE_NAME_TRIES = 10_000


class MoveError(SortnetError, ValueError):
    """A move that cannot be done safely (outside the folder, unknown class, a link, ...); nothing was changed."""


@dataclass(frozen=True)
class Move:
    """One logged move; paths are relative to the data folder, with '/' separators."""

    id: str
    src: str
    dst: str
    from_class: str
    to_class: str
    size: int
    sha256: str
    time: float
    reason: str = ""

    def to_dict(self) -> dict:
        return {"action": "move", **asdict(self)}


@dataclass(frozen=True)
class UndoResult:
    move: Move
    restored: bool
    path: str  # where the file is now (relative)
    reason: str = ""  # why it was not restored, or "" when it was


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _root(data_dir) -> Path:
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise MoveError(f"{data_dir} is not a folder; moves work on an image folder (DATA/<class>/<images>)")
    return root.resolve()


def _inside(root: Path, rel: str | os.PathLike) -> Path:
    """root/rel resolved, refusing anything that leaves root (absolute paths, '..', links out)."""
    rel_path = Path(rel)
    if rel_path.is_absolute():
        try:
            rel_path = rel_path.resolve().relative_to(root)
        except ValueError:
            raise MoveError(f"{rel} is not inside the data folder {root}") from None
    full = (root / rel_path).resolve()
    if full == root or root not in full.parents:
        raise MoveError(f"{rel} is not inside the data folder {root}")
    return full


def _class_base(root: Path, path: Path) -> tuple[Path, str]:
    """(the folder that holds the class folders, the class name) of a file: DATA/<class>/... or
    DATA/<split>/<class>/..."""
    parts = path.relative_to(root).parts
    if len(parts) >= 3 and parts[0].lower() in SPLIT_DIRS:
        return root / parts[0], parts[1]
    if len(parts) >= 2:
        return root, parts[0]
    raise MoveError(f"{path.name} is not inside a class folder of {root}")


def _check_class_name(name: str, base: Path) -> None:
    if not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise MoveError(f"{name!r} is not a class folder name (a plain, non-hidden folder name)")
    if not (base / name).is_dir():
        known = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise MoveError(f"no class folder {name!r} in {base}; classes there: {', '.join(known) or 'none'}")
    if (base / name).is_symlink():
        raise MoveError(f"class folder {base / name} is a link; moves only go into real folders")


def _free_name(folder: Path, name: str) -> Path:
    """folder/name, or folder/stem-1.ext, stem-2.ext, ... : the first that does not exist."""
    target = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    for i in range(1, MAX_FREE_NAME_TRIES):
        if not os.path.lexists(target):
            return target
        target = folder / f"{stem}-{i}{suffix}"
    raise MoveError(f"no free name for {name} in {folder}")


def _place(src: Path, folder: Path, name: str) -> Path:
    """Move src into folder under name or a free variant of it; never replaces an existing file."""
    for _ in range(100):  # another process may take the free name between the check and the link
        dst = _free_name(folder, name)
        try:
            os.link(src, dst)  # fails with EEXIST instead of replacing
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if os.path.lexists(dst):
                continue
            os.rename(src, dst)  # a filesystem without hard links: the name was free a moment ago
            return dst
        os.unlink(src)
        return dst
    raise MoveError(f"could not find a free name for {name} in {folder}")


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _append(root: Path, entry: dict) -> None:
    """One JSON line appended and flushed to disk (a log: appended, never rewritten)."""
    with open(root / LOG_NAME, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def move_to_class(data_dir, rel_path: str, to_class: str, *, reason: str = "") -> Move:
    """Move DATA/rel_path into the class folder `to_class` beside its own (same split); logged. Returns the Move.

    reason: a free text kept in the log (e.g. "suspect rank 3, score 0.02"). Raises MoveError, changing nothing,
    for a path outside the folder, a link, a missing file, an unknown class or the class the file is already in.
    """
    root = _root(data_dir)
    given = root / rel_path if not Path(rel_path).is_absolute() else Path(rel_path)
    if given.is_symlink():
        raise MoveError(f"{rel_path} is a link; only regular files are moved")
    src = _inside(root, rel_path)
    if not src.is_file():
        raise MoveError(f"{rel_path} is not a file in {root} (already moved?)")
    base, from_class = _class_base(root, src)
    if to_class == from_class:
        raise MoveError(f"{rel_path} is already in class {to_class!r}")
    _check_class_name(to_class, base)
    stat, sha = src.stat(), _sha256(src)
    dst = _place(src, base / to_class, src.name)
    move = Move(id=uuid.uuid4().hex[:12], src=_rel(root, src), dst=_rel(root, dst), from_class=from_class,
                to_class=to_class, size=stat.st_size, sha256=sha, time=round(time.time(), 3), reason=reason)
    try:
        _append(root, move.to_dict())
    except OSError:
        os.rename(dst, src)  # an unlogged move could not be undone: put the file back
        raise
    return move


def read_moves(data_dir) -> tuple[list[Move], set[str]]:
    """(every logged move, oldest first; the ids already undone). Damaged lines are skipped."""
    log = _root(data_dir) / LOG_NAME
    moves, undone = [], set()
    if not log.is_file():
        return moves, undone
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
            if entry.get("action") == "move":
                moves.append(Move(**{k: entry[k] for k in Move.__dataclass_fields__ if k in entry}))
            elif entry.get("action") == "undo":
                undone.add(entry["id"])
        except (ValueError, TypeError, KeyError):
            continue
    return moves, undone


def pending_moves(data_dir) -> list[Move]:
    """Logged moves not undone yet, oldest first."""
    moves, undone = read_moves(data_dir)
    return [m for m in moves if m.id not in undone]


def _undo_one(root: Path, move: Move) -> UndoResult:
    try:
        now = _inside(root, move.dst)
        back = _inside(root, move.src)
    except MoveError as e:
        return UndoResult(move, False, move.dst, str(e))
    if now.is_symlink() or not now.is_file():
        return UndoResult(move, False, move.dst, "the moved file is no longer there")
    if now.stat().st_size != move.size or _sha256(now) != move.sha256:
        return UndoResult(move, False, move.dst, "the moved file changed since the move")
    if os.path.lexists(back):
        return UndoResult(move, False, move.dst, f"{move.src} exists again; move it away first")
    back.parent.mkdir(parents=True, exist_ok=True)
    placed = _place(now, back.parent, back.name)
    _append(root, {"action": "undo", "id": move.id, "path": _rel(root, placed), "time": round(time.time(), 3)})
    if placed != back:  # taken between the check and the move: the file keeps the free name it got
        return UndoResult(move, False, _rel(root, placed), f"{move.src} was taken; the file is at {_rel(root, placed)}")
    return UndoResult(move, True, move.src)


def undo_moves(data_dir, ids: list[str] | None = None) -> list[UndoResult]:
    """Move files back (newest move first), each undo logged; ids: only these moves (default: all pending)."""
    root = _root(data_dir)
    todo = [m for m in pending_moves(root) if ids is None or m.id in set(ids)]
    return [_undo_one(root, m) for m in reversed(todo)]
