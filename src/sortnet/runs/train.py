"""`sortnet.train(data)`: `prepare` + `fit` into a run folder; or continue an interrupted run exactly.

Usage:
    clf = train("photos/", epochs=10)                  # a Classifier; clf.run_dir holds model.safetensors
    clf = train(resume="runs/photos")                  # continue an interrupted run exactly
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from sortnet.config import ConfigError, TrainConfig
from sortnet.device import resolve_device
from sortnet.models.registry import validate_arch
from sortnet.training import distributed
from sortnet.training.callbacks import Callback
from sortnet.training.clock import Deadline
from sortnet.runs.fit import fit, read_resumable
from sortnet.runs.prepare import prepare
from sortnet.atomic import remove_stale_temps
from sortnet.runfolder.layout import (MODEL_FILE, RUN_FILE, WRITTEN_FILES, check_new_run_dir, default_run_dir,
                                     member_dir,
                                     make_run_dir, remove_unfinished)
from sortnet.runfolder.lock import RunLock

__all__ = ["train", "default_run_dir", "check_new_run_dir", "MODEL_FILE"]


def train(data: str | None = None, *, out: str | None = None, resume: str | None = None,
          callbacks: list[Callback] | None = None, deadline: Deadline | None = None, **settings):
    """Train a classifier on a folder or built-in dataset; see TrainConfig for every setting.

    Under torchrun (`sortnet train --nproc N`) every rank calls this; rank 0 alone prints and writes.
    A time budget covers the whole call, data loading included: `deadline` (training/clock.Deadline; the CLI
    passes one counted from the process's launch) or else time_budget= seconds counted from this call."""
    called = time.monotonic()
    if not distributed.is_main():
        settings = {**settings, "progress": False}  # no data-check lines or decoding bars from other ranks
    if resume is not None:
        if member_dir(Path(resume), 1).is_dir() and not (Path(resume) / RUN_FILE).exists():
            raise ConfigError(f"{resume} is an ensemble run: resume each unfinished member with --resume "
                              f"{resume}/member-K, then combine them with `sortnet ensemble`")
        distributed.join(settings.get("device", "auto"))  # only rank 0 needs the run folder
        saved = distributed.from_main(lambda: read_resumable(Path(resume)))
        overrides = {k: v for k, v in settings.items() if k in ("progress", "device")}
        budget = saved["config"].get("time_budget")
        deadline = deadline or (Deadline(float(budget), called) if budget else None)
        with _owned(Path(resume)):  # the run folder is this process's until the end (rank 0)
            bundle = prepare(saved["data"], **dict(saved["config"], **overrides))
            return fit(bundle, out=resume, resume=True, callbacks=callbacks, deadline=deadline, **overrides)
    if data is None:
        raise ConfigError("train needs DATA (a folder or a built-in dataset name) or resume=RUN_DIR")
    cfg = TrainConfig.from_dict(settings)  # bad settings fail before any data is read
    deadline = deadline or (Deadline(cfg.time_budget, called) if cfg.time_budget else None)
    if deadline is not None:
        settings = {**settings, "time_budget": deadline.seconds}
    resolve_device(cfg.device)  # as does --device cuda on a machine without a GPU
    if cfg.model != "auto":
        validate_arch(cfg.model)
    run_dir = Path(out) if out else default_run_dir(data)
    if not distributed.is_main():  # rank 0 checks, makes and cleans up the run folder
        return fit(prepare(data, **settings), out=run_dir, callbacks=callbacks, deadline=deadline, **settings)
    check_new_run_dir(run_dir, str(data))
    created = make_run_dir(run_dir)
    lock = RunLock(run_dir).acquire()  # RunLockError when another run took the folder since the check
    try:
        check_new_run_dir(run_dir, str(data), owner=True)  # again, as its owner: a run that ended meanwhile is kept
    except BaseException:
        lock.release()
        raise
    try:
        if cfg.ensemble > 1:
            from sortnet.runs.ensemble import train_ensemble

            result = train_ensemble(data, run_dir, settings, callbacks, deadline)
        else:
            bundle = prepare(data, **settings)
            result = fit(bundle, out=run_dir, callbacks=callbacks, deadline=deadline, **settings)
        remove_stale_temps(run_dir, WRITTEN_FILES)
        return result
    except BaseException as e:
        gone = remove_unfinished(run_dir, created)  # no empty or half-made run folder after a failure
        if gone and isinstance(e, KeyboardInterrupt):  # Ctrl-C or SIGTERM before the first checkpoint
            raise type(e)("training stopped before its first checkpoint; nothing was kept") from None
        raise
    finally:
        lock.release()


@contextlib.contextmanager
def _owned(run_dir: Path):
    """Hold run_dir's lock (rank 0) while resuming; stale temporary files go at the start and the end."""
    if not distributed.is_main():
        yield
        return
    with RunLock(run_dir):
        remove_stale_temps(run_dir, WRITTEN_FILES)
        yield
        remove_stale_temps(run_dir, WRITTEN_FILES)
