"""Crash-safe, never-clobbering file writes: temporary file in the same folder, fsync, rename, fsync the folder.

A reader sees either the old complete file or the new complete file, never a partial one. Every write
refuses a target that is not a regular file (a folder, a symbolic link, a device node, a FIFO, a socket):
it is never replaced by a regular file (as root, `--out /dev/null` would otherwise replace the system's
/dev/null). `new=True` (outputs the user names: `export --out`, `ensemble --out`) also refuses any existing
file and publishes with a hard link, which cannot replace a file created meanwhile; `protect` names files
the output must not be (the input model). A full disk is one OutputError line ("no space left on device
at PATH ..."), the target left as it was.

Usage:
    atomic_write_bytes(Path("run/model.safetensors"), data)
    atomic_write_bytes(Path(args.out), data, new=True, protect=[model_path])   # user-named output
    with atomic_path(Path("run/checkpoint.pt")) as tmp: torch.save(state, tmp)
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from sortnet.errors import SortnetError

TEMP_SUFFIX = ".tmp"  # temporary files are ".<target name>.<random>.tmp" next to the target
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
LOW_SPACE_BYTES = 4 << 20  # a writer's RuntimeError (torch's C++ streams) counts as "disk full" below this free


class OutputError(SortnetError):
    """An output path that must not be written (exists, not a regular file, the input) or a full disk."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some filesystems/platforms cannot open folders; the rename is still atomic
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_output(path: str | os.PathLike, *, new: bool = False, protect: Iterable[str | os.PathLike] = ()) -> Path:
    """path, or OutputError when writing it would replace something it must not (see the module doc)."""
    path = Path(path)
    for other in protect:
        with contextlib.suppress(OSError):
            if os.path.samefile(path, other):
                raise OutputError(f"{path} is the input file {other}; writing there would replace it: give "
                                  "another output file")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as e:
        raise OutputError(f"cannot check output {path} ({e.strerror}); give another output file") from e
    kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a symbolic link" if stat.S_ISLNK(st.st_mode)
            else None if stat.S_ISREG(st.st_mode) else "a device, FIFO or socket")
    if kind == "a folder":
        raise OutputError(f"{path} is a folder; give a file name (e.g. {path / 'model.onnx'})")
    if kind is not None:
        raise OutputError(f"{path} is {kind}, not a regular file; sortnet never replaces one: give a new file name")
    if new:
        raise OutputError(f"{path} already exists; sortnet never replaces an existing file: remove it or give "
                          "another output file")
    return path


def disk_full(error: BaseException, folder: Path) -> bool:
    """Whether a write error means the disk (or quota) is full; torch's C++ writers lose the errno."""
    if isinstance(error, OSError):
        return error.errno in DISK_FULL_ERRNOS
    if isinstance(error, RuntimeError):  # "basic_ios::clear: iostream error", "unexpected pos ...": no errno
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free < LOW_SPACE_BYTES
    return False


def disk_full_error(folder: Path, error: BaseException, written: int | None = None) -> OutputError:
    """The one line for a full disk; written: bytes of the file written before the disk was full."""
    why = getattr(error, "strerror", None) or "the write failed"
    try:
        free = f"{shutil.disk_usage(folder).free / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    part = f", {written / 1e6:.1f} MB of the file written" if written else ""
    return OutputError(f"no space left on device at {folder}: {why} ({free}{part}); free some space or use --out "
                       "elsewhere")


def _size(path: Path) -> int | None:
    with contextlib.suppress(OSError):
        return path.stat().st_size
    return None


def _publish(tmp: Path, path: Path, new: bool) -> None:
    if not new:
        check_output(path)  # again, just before the rename: a link or device put there meanwhile stays
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if anything appeared at path meanwhile: never replaces
    except FileExistsError:
        check_output(path, new=True)
        raise
    except OSError as e:  # no hard links on this filesystem: checked rename instead
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        check_output(path, new=True)
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: Path, *, new: bool = False, protect: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yields a temporary path to write; on success it becomes path atomically, on error it is removed."""
    path = check_output(path, new=new, protect=protect)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as e:
        raise disk_full_error(path.parent, e) if disk_full(e, path.parent) else e
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _publish(tmp, path, new)
        _fsync_dir(path.parent)
    except (OSError, RuntimeError) as e:
        if disk_full(e, path.parent):
            raise disk_full_error(path.parent, e, _size(tmp)) from e
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: Path, data: bytes, *, new: bool = False,
                       protect: Iterable[str | os.PathLike] = ()) -> None:
    with atomic_path(path, new=new, protect=protect) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str, *, new: bool = False) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), new=new)


def remove_stale_temps(folder: Path, names: Iterable[str]) -> list[Path]:
    """Remove ".<name>.*.tmp" left in folder by a writer that was killed (SIGKILL, power loss) for each name.

    Only call while owning the folder (a run's lock): a live writer's temporary file would go too."""
    removed = []
    for name in names:
        for stale in Path(folder).glob(f".{name}.*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(stale).st_mode):
                    stale.unlink()
                    removed.append(stale)
    return removed
