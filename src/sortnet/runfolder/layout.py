"""The run folder: its file names (the one place they are written), the rules for a new one, and the clean-up after a run that failed early.

Imports nothing heavy (no torch), so the CLI can refuse a bad --out in milliseconds.

Rules for a new run folder (`train --out`, default runs/<data name>): it is new or an empty folder (a
user's files are never overwritten), not a file, and not inside the data folder (its files would be read
as data by the next run). A run that fails before its first checkpoint removes what it wrote and the
folders it made; after a checkpoint the folder stays, for --resume. A run owns its folder for its whole
length (runfolder/lock.py): a second run into it is refused. Temporary files a killed writer left
(".model.safetensors.*.tmp") are removed when the run is resumed or finishes.

Usage:
    run_dir = Path(out) if out else default_run_dir(data)
    check_new_run_dir(run_dir, data)                      # ConfigError with what to do
    created = make_run_dir(run_dir)
    try: ... except BaseException: remove_unfinished(run_dir, created); raise
    with owned_new_folder(out, data): ...                 # ladder/curve: the same rules, owned for the block
"""
from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path

from sortnet.atomic import remove_stale_temps
from sortnet.config import ConfigError
from sortnet.runfolder.lock import LOCK_FILE, RunLock, RunLockError, lock_holder

RUN_FILE = "run.json"
MODEL_FILE = "model.safetensors"
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_FILE = "metrics.json"
TENSORBOARD_DIR = "tensorboard"
REPORT_FILE = "report.html"
MEMBER_PREFIX = "member-"  # an ensemble run's members: member-1/, member-2/, ... each a run folder of its own
WRITTEN_FILES = (RUN_FILE, MODEL_FILE, CHECKPOINT_NAME, METRICS_FILE, REPORT_FILE)  # written atomically


def member_dir(run_dir: Path, k: int) -> Path:
    """Member k's run folder (k from 1)."""
    return Path(run_dir) / f"{MEMBER_PREFIX}{k}"


def data_name(data: str) -> str:
    """A file-name-safe name for a data folder or built-in dataset ("photos/" -> "photos")."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(str(data).rstrip("/")).name or "data").strip("-") or "data"


def default_run_dir(data: str, root: str = "runs") -> Path:
    """runs/<data name>, or runs/<data name>-2, -3 ... when taken (never overwrites a run)."""
    name = data_name(data)
    candidate, n = Path(root) / name, 2
    while candidate.exists():
        candidate, n = Path(root) / f"{name}-{n}", n + 1
    return candidate


def check_new_run_dir(run_dir: Path, data: str, owner: bool = False) -> None:
    """ConfigError unless run_dir is new or an empty folder outside the data folder; RunLockError while another
    run owns it (owner=True: this process holds its lock)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file, not a folder; give a new folder for the run")
    holder = None if owner else lock_holder(run_dir)
    if holder is not None:
        raise RunLockError(f"{run_dir} is in use by another sortnet run{f' (pid {holder})' if holder else ''}; "
                           "wait for it to finish or choose another --out")
    if (run_dir / CHECKPOINT_NAME).exists() or (run_dir / MODEL_FILE).exists():
        raise ConfigError(f"{run_dir} already holds a run; use --resume {run_dir} or choose another --out")
    present = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_FILE) if run_dir.exists() else []
    if present:
        raise ConfigError(f"--out {run_dir} already holds other files ({', '.join(present[:3])}"
                          f"{', ...' if len(present) > 3 else ''}); runs are written only into new or empty "
                          "folders so nothing of yours is overwritten: choose another --out")
    data_dir = Path(str(data)).expanduser()
    if data_dir.is_dir() and run_dir.resolve().is_relative_to(data_dir.resolve()):
        raise ConfigError(f"run folder {run_dir} is inside the data folder {data}: its files would be read as "
                          "data next time; give an --out outside the data folder")


def make_run_dir(run_dir: Path) -> list[Path]:
    """Create run_dir (and missing parents); returns the folders this call created, deepest first."""
    created = [d for d in (Path(run_dir), *Path(run_dir).parents) if not d.exists()]
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return created


def remove_unfinished(run_dir: Path, created: list[Path]) -> bool:
    """After a failure before the first checkpoint: remove what the run wrote and the folders it made.

    Call while owning the folder (its lock file goes too). True when nothing of the run is left."""
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT_NAME).exists():
        return False  # resumable (or worth inspecting): the folder stays as it is
    (run_dir / RUN_FILE).unlink(missing_ok=True)
    shutil.rmtree(run_dir / TENSORBOARD_DIR, ignore_errors=True)  # event files this run wrote
    remove_stale_temps(run_dir, WRITTEN_FILES)
    (run_dir / LOCK_FILE).unlink(missing_ok=True)
    for folder in created:  # deepest first; a folder someone else wrote into is kept
        try:
            folder.rmdir()
        except OSError:
            break
    return True


@contextlib.contextmanager
def owned_new_folder(run_dir: Path, data: str):
    """A new run folder (check_new_run_dir's rules) made and owned (RunLock) for the whole block; released on
    every exit. After a failure the folders it made go when nothing but the lock file is in them (a
    partial result, e.g. the rungs a ladder finished, stays)."""
    run_dir = Path(run_dir)
    check_new_run_dir(run_dir, data)
    created = make_run_dir(run_dir)
    lock = RunLock(run_dir).acquire()  # RunLockError when another run took the folder since the check
    try:
        check_new_run_dir(run_dir, data, owner=True)  # again, as its owner: a run that ended meanwhile is kept
        yield run_dir
    except BaseException:
        if _holds_only_lock(run_dir):
            lock.release(remove=True)
            for folder in created:  # deepest first; a folder someone else wrote into is kept
                try:
                    folder.rmdir()
                except OSError:
                    break
        raise
    finally:
        lock.release()


def _holds_only_lock(run_dir: Path) -> bool:
    """True when run_dir holds nothing but its lock file."""
    return all(p.name == LOCK_FILE for p in Path(run_dir).iterdir())


def has_checkpoint(run_dir: Path) -> bool:
    return (Path(run_dir) / CHECKPOINT_NAME).exists()
