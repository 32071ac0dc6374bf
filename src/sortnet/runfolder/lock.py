"""The owner of a run folder: an exclusive lock held for the whole run, so two runs never share a folder.

The lock is fcntl.flock on RUN_DIR/.sortnet-run.lock (the file holds the owner's pid, for the message).
The kernel releases it when the process ends in any way (exit, Ctrl-C, SIGKILL): a lock file left by a
dead process never blocks anyone. A second `sortnet train --out X` or `--resume X` while X is owned is
refused with one line. On systems without fcntl (Windows) runs are not locked.

Usage:
    with RunLock(run_dir):           # RunLockError (one line) when another run holds it
        ...                          # train, write the model file, the report
    holder = lock_holder(run_dir)    # pid text of the owner, or None when free
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sortnet.errors import SortnetError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here
    fcntl = None

LOCK_FILE = ".sortnet-run.lock"


class RunLockError(SortnetError):
    """The run folder is owned by another running sortnet process."""


def _busy_message(run_dir: Path, holder: str) -> str:
    who = f" (pid {holder})" if holder else ""
    return (f"{run_dir} is in use by another sortnet run{who}; wait for it to finish or choose another --out "
            "(two runs in one folder would lose a model)")


def lock_holder(run_dir: str | os.PathLike) -> str | None:
    """The owner's pid (text, may be empty) when run_dir's lock is held now, else None. Takes no lock."""
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except OSError:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    finally:
        os.close(fd)  # releases the probe's shared lock, if taken


class RunLock:
    """Exclusive ownership of one run folder (which must exist) until release() or the process ends."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir, self.fd = Path(run_dir), None

    def acquire(self) -> "RunLock":
        if fcntl is None:
            return self
        path = self.run_dir / LOCK_FILE
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                os.close(fd)
                raise RunLockError(_busy_message(self.run_dir, holder)) from None
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    break  # still the file at the path (not one its last owner removed meanwhile)
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def release(self, remove: bool = False) -> None:
        """Give the folder up; remove=True also deletes the lock file (a run that leaves no folder)."""
        if self.fd is None:
            return
        if remove:
            with contextlib.suppress(OSError):
                (self.run_dir / LOCK_FILE).unlink()
        os.close(self.fd)  # closing the descriptor releases the flock
        self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
