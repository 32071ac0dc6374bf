"""The owner of a run folder: an exclusive lock held for the whole run, so two runs never share a folder.

The lock is fcntl.flock on RUN_DIR/.sortnet-run.lock (the file holds the owner's pid, for the message).
The kernel releases it when the process ends in any way (exit, Ctrl-C, SIGKILL): a lock file left by a
dead process never blocks anyone. A second `sortnet train --out X` or `--resume X` while X is owned is
refused with one line. On systems without fcntl (Windows) runs are not locked.

Every verb that writes a run folder owns it: `train`, `ladder`, `curve` hold the lock exclusively; the
workers of one `sortnet search` study share a folder by design, so each holds it SHARED (any number of
workers together; a train/ladder/curve refused while one runs, and a search refused while one of those
owns the folder). Workers starting a study at once open it one at a time (`study_section`), so two NEW
searches with different settings into one folder cannot both define it.

Usage:
    with RunLock(run_dir):           # RunLockError (one line) when another run holds it
        ...                          # train, write the model file, the report
    holder = lock_holder(run_dir)    # pid text of the owner, or None when free
    with RunLock(search_dir, shared=True): ...   # one of a study's workers
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
PID_WIDTH = 16  # bytes of the owner's pid field in LOCK_FILE (space-padded)
SECTION_FILE = ".sortnet-study.lock"  # held exclusively (blocking) while a search worker opens its study


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
    """Exclusive ownership of one run folder (which must exist) until release() or the process ends;
    shared=True: shared with other holders in shared mode (a search study's workers), never with an owner."""

    def __init__(self, run_dir: str | os.PathLike, shared: bool = False) -> None:
        self.run_dir, self.fd, self.shared = Path(run_dir), None, shared

    def acquire(self) -> "RunLock":
        if fcntl is None:
            return self
        path = self.run_dir / LOCK_FILE
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                os.close(fd)
                raise RunLockError(_busy_message(self.run_dir, holder)) from None
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    break  # still the file at the path (not one its last owner removed meanwhile)
            os.close(fd)
        if not self.shared:
            os.ftruncate(fd, 0)
        # one fixed-width write: shared holders overwrite each other's pid whole (the latest is named), never torn
        os.pwrite(fd, str(os.getpid()).ljust(PID_WIDTH).encode(), 0)
        self.fd = fd
        return self

    def release(self, remove: bool = False) -> None:
        """Give the folder up; remove=True also deletes the lock file (a run that leaves no folder)."""
        if self.fd is None:
            return
        if remove and not self.shared:  # other workers may still hold a shared lock on that file
            with contextlib.suppress(OSError):
                (self.run_dir / LOCK_FILE).unlink()
        os.close(self.fd)  # closing the descriptor releases the flock
        self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def study_section(run_dir: str | os.PathLike):
    """Hold run_dir's study-opening lock (blocking, exclusive) for the block: workers of a search open or
    define their study one at a time. Released when the block ends (or the process does)."""
    if fcntl is None:
        yield
        return
    fd = os.open(Path(run_dir) / SECTION_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits while another worker opens the study (seconds at most)
        yield
    finally:
        os.close(fd)
