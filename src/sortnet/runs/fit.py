"""`sortnet.fit(bundle, **settings)`: one training run on prepared data -> a Classifier (and a run folder).

One builder (`build_trainer`, runs/assemble.py) assembles new and resumed runs alike: model, recipe, Trainer, the standard
callbacks (progress bar; with a run folder also TensorBoard and checkpoints; with a budget the time keeper)
and the user's callbacks. With a run folder the run ends with RUN_DIR/report.html (report=False skips it).
fit() leaves the process as it found it: torch's global RNG and thread count are restored afterwards.

Usage:
    bundle = sortnet.prepare("photos/")
    clf = sortnet.fit(bundle, model="cnn-small", epochs=5, callbacks=[EarlyStopping(patience=2)])
    clf = sortnet.fit(bundle, out="runs/photos", time_budget="2m")      # + model file, checkpoints, logs, report
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from sortnet.config import DATA_SHAPING, ConfigError, TrainConfig
from sortnet.data.dataset import DataBundle
from sortnet.device import all_cores, resolve_precision
from sortnet.runfolder.layout import CHECKPOINT_NAME, MODEL_FILE, RUN_FILE
from sortnet.runfolder.record import read_run_file, write_run_file
from sortnet.runs.announce import announce_trainer
from sortnet.runs.assemble import build_trainer
from sortnet.runs.finish import finish_run
from sortnet.runs.recipe import resolve_recipe
from sortnet.runs.report_reserve import report_reserve_seconds, report_skipped
from sortnet.training import distributed
from sortnet.training.budget import TimeBudget
from sortnet.training.callbacks import Callback
from sortnet.training.checkpoint import load_checkpoint
from sortnet.training.clock import Deadline
from sortnet.training.recipe import Recipe
from sortnet.training.trainer import Trainer


def fit(bundle: DataBundle, *, out: str | Path | None = None, callbacks: list[Callback] | None = None,
        resume: bool = False, deadline: Deadline | None = None, **settings):
    """Train on a prepared bundle; returns a Classifier. out=None trains in memory (no files written).

    resume=True continues the run in `out` exactly (its run.json settings are used; only progress and device
    may be given). deadline: the time budget's training/clock.Deadline, handed down by the caller (the CLI's
    counts from the process's launch; a ladder rung's or ensemble member's is its share); without one,
    time_budget= seconds are counted from this call.
    """
    from sortnet.classifier import Classifier

    called = time.monotonic()
    if deadline is not None:
        settings = {**settings, "time_budget": deadline.seconds}

    run_dir = Path(out) if out is not None else None
    distributed.join(settings.get("device", "auto"))  # under torchrun: one process group for the run
    state, saved_recipe = None, None
    if resume:
        if run_dir is None:
            raise ConfigError("fit(resume=True) needs out=RUN_DIR (the folder of the interrupted run)")
        saved = distributed.from_main(lambda: read_resumable(run_dir))  # only rank 0 needs the run folder
        settings = dict(saved["config"], **{k: v for k, v in settings.items() if k in ("progress", "device")})
        state = distributed.from_main(lambda: load_checkpoint(run_dir / CHECKPOINT_NAME))
        saved_recipe = saved["recipe"]
    cfg = _fit_config(bundle, settings)
    deadline = deadline or (Deadline(cfg.time_budget, called) if cfg.time_budget else None)
    files = run_dir if distributed.is_main() else None  # rank 0 alone writes and prints
    cfg.progress = cfg.progress and distributed.is_main()
    with torch.random.fork_rng(devices=[]), all_cores():
        torch.manual_seed(cfg.seed)
        device = distributed.join(cfg.device)
        dtype = resolve_precision(cfg.precision, device)
        recipe = Recipe(**saved_recipe) if saved_recipe else resolve_recipe(cfg, bundle, device)
        if recipe.pretrained:  # ImageNet weights: cached features, linear head, optional fine-tuning
            from sortnet.runs.choice import resolve_choice
            from sortnet.runs.pretrained import fit_pretrained

            result = fit_pretrained(bundle, cfg, recipe, device, dtype, files, callbacks, state,
                                    reason=resolve_choice(cfg, bundle, device).reason,
                                    deadline=deadline,
                                    after_seconds=report_reserve_seconds(cfg, files))
        else:
            result = _fit_from_scratch(bundle, cfg, device, dtype, files, callbacks, state, saved_recipe, resume,
                                       deadline)
        if files is not None and cfg.report and not report_skipped(cfg, files, bundle.data):  # rank 0 alone
            from sortnet.reporting.after_training import report_after_training

            report_after_training(result, bundle, files / MODEL_FILE, progress=cfg.progress, check=cfg.check)
    return Classifier.from_training(result)


def _fit_from_scratch(bundle, cfg, device, dtype, run_dir, callbacks, state, saved_recipe, resume,
                      deadline: Deadline | None) -> dict:
    trainer = build_trainer(bundle, cfg, device, dtype, run_dir, callbacks, state, saved_recipe, deadline)
    if run_dir is not None and not resume:
        write_run_file(run_dir, bundle.data, cfg.to_dict(), trainer.recipe.to_dict())
    announce_trainer(cfg, bundle, trainer, device, trainer.dtype, run_dir, resumed=resume)
    _train(trainer, run_dir)
    return finish_run(trainer, bundle, cfg, run_dir, deadline=_finish_deadline(trainer, deadline),
                      reserve_seconds=report_reserve_seconds(cfg, run_dir))


def _fit_config(bundle: DataBundle, settings: dict) -> TrainConfig:
    conflicts = [k for k in DATA_SHAPING if k in settings and k in bundle.settings
                 and settings[k] != bundle.settings[k]]
    if conflicts:
        given = ", ".join(f"{k}={settings[k]!r} (bundle: {bundle.settings[k]!r})" for k in conflicts)
        raise ConfigError(f"fit() got data settings that differ from the prepared bundle: {given}; "
                          f"call sortnet.prepare again with them")
    cfg = TrainConfig.from_dict({**bundle.settings, **settings})
    if cfg.ensemble != 1:
        raise ConfigError("fit() trains one model; for an ensemble use sortnet.train(data, ensemble=N) or "
                          "combine fitted models with sortnet.ensemble(...)")
    return cfg


def _train(trainer: Trainer, run_dir: Path | None) -> None:
    try:
        trainer.fit()
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (sortnet.stopsignal.Terminated)
        resumable = run_dir is not None and (Path(run_dir) / CHECKPOINT_NAME).exists()
        hint = f"; continue with: sortnet train --resume {run_dir}" if resumable else ""
        raise type(e)(f"training interrupted{hint}") from None


def _finish_deadline(trainer: Trainer, deadline: Deadline | None) -> Deadline | None:
    """The deadline the end of the run must meet: what the keeper kept (a resumed run has less left)."""
    keeper = next((cb for cb in trainer.callbacks if isinstance(cb, TimeBudget)), None)
    if deadline is None or keeper is None:
        return deadline
    return dataclasses.replace(deadline, seconds=deadline.seconds - keeper.spent)  # less earlier sessions' time


def read_resumable(run_dir: Path) -> dict:
    """run.json of an interrupted run (runfolder/record.py), with a recipe this sortnet can read (a run folder of
    another version may hold other fields); ConfigError with what to do otherwise."""
    saved = read_run_file(run_dir)
    try:
        Recipe(**saved["recipe"])
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{Path(run_dir) / RUN_FILE} holds a recipe this sortnet cannot read ({e}); "
                          "start a new run") from e
    return saved
