"""`sortnet.train(data)`: `prepare` + `fit` into a run folder; or continue an interrupted run exactly.

Usage:
    clf = train("photos/", epochs=10)                  # a Classifier; clf.run_dir holds model.safetensors
    clf = train(resume="runs/photos")                  # continue an interrupted run exactly
"""
from __future__ import annotations

import time
from pathlib import Path

from sortnet.config import ConfigError, TrainConfig
from sortnet.device import resolve_device
from sortnet.models.registry import validate_arch
from sortnet.training import distributed
from sortnet.training.callbacks import Callback
from sortnet.training.fit import fit, read_run_file
from sortnet.training.prepare import prepare
from sortnet.training.rundir import (MODEL_FILE, RUN_FILE, check_new_run_dir, default_run_dir, make_run_dir,
                                     remove_unfinished)

__all__ = ["train", "default_run_dir", "check_new_run_dir", "MODEL_FILE"]


def train(data: str | None = None, *, out: str | None = None, resume: str | None = None,
          callbacks: list[Callback] | None = None, started_at: float | None = None, **settings):
    """Train a classifier on a folder or built-in dataset; see TrainConfig for every setting.

    Under torchrun (`sortnet train --nproc N`) every rank calls this; rank 0 alone prints and writes.
    A time budget covers the whole call, data loading included, from `started_at` (a time.monotonic()
    value; default: now — the CLI passes the process start)."""
    started_at = time.monotonic() if started_at is None else started_at
    if not distributed.is_main():
        settings = {**settings, "progress": False}  # no data-check lines or decoding bars from other ranks
    if resume is not None:
        if (Path(resume) / "member-1").is_dir() and not (Path(resume) / RUN_FILE).exists():
            raise ConfigError(f"{resume} is an ensemble run: resume each unfinished member with --resume "
                              f"{resume}/member-K, then combine them with `sortnet ensemble`")
        distributed.join(settings.get("device", "auto"))  # only rank 0 needs the run folder
        saved = distributed.from_main(lambda: read_run_file(Path(resume)))
        overrides = {k: v for k, v in settings.items() if k in ("progress", "device")}
        bundle = prepare(saved["data"], **dict(saved["config"], **overrides))
        return fit(bundle, out=resume, resume=True, callbacks=callbacks, started_at=started_at, **overrides)
    if data is None:
        raise ConfigError("train needs DATA (a folder or a built-in dataset name) or resume=RUN_DIR")
    cfg = TrainConfig.from_dict(settings)  # bad settings fail before any data is read
    resolve_device(cfg.device)  # as does --device cuda on a machine without a GPU
    if cfg.model != "auto":
        validate_arch(cfg.model)
    run_dir = Path(out) if out else default_run_dir(data)
    if not distributed.is_main():  # rank 0 checks, makes and cleans up the run folder
        return fit(prepare(data, **settings), out=run_dir, callbacks=callbacks, started_at=started_at, **settings)
    check_new_run_dir(run_dir, str(data))
    created = make_run_dir(run_dir)
    try:
        if cfg.ensemble > 1:
            from sortnet.ensemble.train import train_ensemble

            return train_ensemble(data, run_dir, settings, callbacks)
        bundle = prepare(data, **settings)
        return fit(bundle, out=run_dir, callbacks=callbacks, started_at=started_at, **settings)
    except BaseException:
        remove_unfinished(run_dir, created)  # no empty or half-made run folder after a failure
        raise
