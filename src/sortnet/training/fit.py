"""`sortnet.fit(bundle, **settings)`: one training run on prepared data -> a Classifier (and a run folder).

One builder (`build_trainer`) assembles new and resumed runs alike: model, recipe, Trainer, the standard
callbacks (progress bar; with a run folder also TensorBoard and checkpoints; with a budget the time keeper)
and the user's callbacks. With a run folder the run ends with RUN_DIR/report.html (report=False skips it).
fit() leaves the process as it found it: torch's global RNG and thread count are restored afterwards.

Usage:
    bundle = sortnet.prepare("photos/")
    clf = sortnet.fit(bundle, model="cnn-small", epochs=5, callbacks=[EarlyStopping(patience=2)])
    clf = sortnet.fit(bundle, out="runs/photos", time_budget="2m")      # + model file, checkpoints, logs, report
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from sortnet.atomic import atomic_write_text
from sortnet.config import DATA_SHAPING, ConfigError, TrainConfig
from sortnet.data.dataset import DataBundle
from sortnet.device import all_cores, resolve_precision, thread_options
from sortnet.jsonsafe import dumps
from sortnet.models.registry import create_model, input_normalization, model_defaults
from sortnet.textsafe import terminal_safe
from sortnet.training import distributed
from sortnet.training.budget import TimeBudget
from sortnet.training.callbacks import Callback, CheckpointSaver, ProgressBar, TensorBoardLogger
from sortnet.training.checkpoint import CheckpointError, load_checkpoint
from sortnet.training.clock import Deadline
from sortnet.training.finish import finish_run
from sortnet.training.planner import PRECISION_MAX_SHARE, measure_costs, plan_budget
from sortnet.training.precision import choose_precision, measures_precision
from sortnet.training.recipe import Recipe, augmentation, resolve_recipe
from sortnet.training.rundir import CHECKPOINT_NAME, MODEL_FILE, RUN_FILE
from sortnet.training.threads import ThreadTuner
from sortnet.training.trainer import Trainer, resolve_balance
from sortnet.tta import view_count

# The report after training (RUN_DIR/report.html) beyond its dreams' time bound: figures, HTML, TensorBoard images
# (Fashion-MNIST, 10k test images, 2-core AVX2 machine otherwise idle: 10.4-12.5 s in all after a 60 s budget).
REPORT_OVERHEAD_SECONDS = 8.0
REPORT_MAX_SHARE = 0.1  # of a time budget, at most, for the report; else it is skipped (and says how to make it)
WHITEN_SAMPLE = 5000  # images used to estimate patch statistics for whitening init
WHITEN_SAMPLE_BYTES = 192 << 20  # and at most this many uint8 bytes of them (bounds RAM for large images)


def fit(bundle: DataBundle, *, out: str | Path | None = None, callbacks: list[Callback] | None = None,
        resume: bool = False, started_at: float | None = None, **settings):
    """Train on a prepared bundle; returns a Classifier. out=None trains in memory (no files written).

    resume=True continues the run in `out` exactly (its run.json settings are used; only progress and device
    may be given). started_at: time.monotonic() at which a time budget's clock started (default: now; the
    CLI passes the process start so that the budget covers the whole command).
    """
    from sortnet.classifier import Classifier

    started_at = time.monotonic() if started_at is None else started_at

    run_dir = Path(out) if out is not None else None
    distributed.join(settings.get("device", "auto"))  # under torchrun: one process group for the run
    state, saved_recipe = None, None
    if resume:
        if run_dir is None:
            raise ConfigError("fit(resume=True) needs out=RUN_DIR (the folder of the interrupted run)")
        saved = distributed.from_main(lambda: read_run_file(run_dir))  # only rank 0 needs the run folder
        settings = dict(saved["config"], **{k: v for k, v in settings.items() if k in ("progress", "device")})
        state = distributed.from_main(lambda: load_checkpoint(run_dir / CHECKPOINT_NAME))
        saved_recipe = saved["recipe"]
    cfg = _fit_config(bundle, settings)
    files = run_dir if distributed.is_main() else None  # rank 0 alone writes and prints
    cfg.progress = cfg.progress and distributed.is_main()
    with torch.random.fork_rng(devices=[]), all_cores():
        torch.manual_seed(cfg.seed)
        device = distributed.join(cfg.device)
        dtype = resolve_precision(cfg.precision, device)
        recipe = Recipe(**saved_recipe) if saved_recipe else resolve_recipe(cfg, bundle, device)
        if recipe.pretrained:  # ImageNet weights: cached features, linear head, optional fine-tuning
            from sortnet.training.choice import resolve_choice
            from sortnet.transfer.fit import fit_pretrained

            result = fit_pretrained(bundle, cfg, recipe, device, dtype, files, callbacks, state,
                                    reason=resolve_choice(cfg, bundle, device).reason,
                                    deadline=Deadline(cfg.time_budget, started_at) if cfg.time_budget else None,
                                    after_seconds=report_reserve_seconds(cfg, files))
        else:
            deadline = Deadline(cfg.time_budget, started_at) if cfg.time_budget else None
            result = _fit_from_scratch(bundle, cfg, device, dtype, files, callbacks, state, saved_recipe, resume,
                                       deadline)
        if files is not None and cfg.report and not _report_skipped(cfg, files, bundle.data):  # rank 0 alone
            from sortnet.reporting.after_training import report_after_training

            report_after_training(result, bundle, files / MODEL_FILE, progress=cfg.progress, check=cfg.check)
    return Classifier.from_training(result)


def _fit_from_scratch(bundle, cfg, device, dtype, run_dir, callbacks, state, saved_recipe, resume,
                      deadline: Deadline | None) -> dict:
    trainer = build_trainer(bundle, cfg, device, dtype, run_dir, callbacks, state, saved_recipe, deadline)
    if run_dir is not None and not resume:
        write_run_file(run_dir, bundle.data, cfg, trainer.recipe)
    _announce(cfg, bundle, trainer, device, trainer.dtype, run_dir, resumed=resume)
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


def model_for_training(arch: str, bundle: DataBundle, pretrained: bool = False):
    """The model for arch, normalized as its family declares (else by the data's statistics), data-initialized.

    pretrained: normalized as its ImageNet weights want (the weights themselves are loaded by the caller)."""
    prep = bundle.preprocessing
    mean, std = input_normalization(arch, prep.mean, prep.std, pretrained)
    model = create_model(arch, prep.channels, len(bundle.classes), prep.img_size, mean, std)
    if model_defaults(arch, pretrained).data_init:
        row_bytes = int(np.prod(bundle.train.images.shape[1:]))
        sample = min(WHITEN_SAMPLE, max(256, WHITEN_SAMPLE_BYTES // row_bytes))  # 224 px photos: ~1,300 images
        model.init_from_data(torch.as_tensor(np.asarray(bundle.train.images[:sample])))
    return model


def build_trainer(bundle: DataBundle, cfg: TrainConfig, device, dtype, run_dir: Path | None,
                  user_callbacks: list[Callback] | None = None, state: dict | None = None,
                  saved_recipe: dict | None = None, deadline: Deadline | None = None) -> Trainer:
    """The one assembly of a run, new (state None) or resumed (state + saved_recipe from its run folder).

    With a time budget (deadline) a new run is planned to fit it (training/planner.py; under torchrun rank 0
    plans for all) and kept to it (training/budget.py); on a CPU the thread count is then chosen by
    measurement (training/threads.py). --precision auto on a CPU with native bf16 starts in fp32 and keeps
    bf16 only where it measured faster and trained like fp32 (training/precision.py; rank 0 measures).
    """
    balance, why = resolve_balance(cfg.balance, list(bundle.train.class_counts().values()))
    measured_precision = measures_precision(cfg.precision, device)
    if measured_precision:
        dtype = None  # fp32 until the measurement says bf16 pays here

    def make(recipe: Recipe, model=None) -> Trainer:
        callbacks: list[Callback] = [ProgressBar(cfg.progress)]
        if run_dir is not None:
            callbacks += [TensorBoardLogger(run_dir / "tensorboard"), CheckpointSaver(run_dir)]
        model = model if model is not None else model_for_training(recipe.model, bundle, recipe.pretrained)
        return Trainer(model, bundle.train, bundle.val, recipe, device=device, dtype=dtype, seed=cfg.seed,
                       callbacks=callbacks + list(user_callbacks or []), balance=balance, compile=cfg.compile)

    notes = [f"balance: {balance} ({why})"]
    if state is None and deadline is not None:
        after = report_reserve_seconds(cfg, run_dir)
        trainer, plan = _planned(cfg, bundle, device, deadline, make, run_dir is not None, after,
                                 choose_precision if measured_precision else None)
        trainer.notes = notes + plan.notes
        keeper = TimeBudget(cfg.time_budget, start=deadline.start, **plan.keeper_args())
    else:
        augment = augmentation(cfg, bundle) if not saved_recipe else None
        trainer = make(Recipe(**saved_recipe) if saved_recipe else resolve_recipe(cfg, bundle, device,
                                                                                 augment=augment))
        trainer.notes = notes + ([augment.note] if augment and augment.note else [])
        if measured_precision:  # the remembered choice for this workload (fixed epochs: the same every run)
            limit = PRECISION_MAX_SHARE * deadline.seconds if deadline is not None else float("inf")
            chosen, precision_why = distributed.from_main(lambda: choose_precision(trainer, max_seconds=limit))
            trainer.set_precision(chosen)
            trainer.notes.append(precision_why)
        if state is not None:
            _load_state(trainer, state, run_dir, bundle)
        if deadline is not None:  # resumed: what is left of the budget, costs measured again on this machine
            spent = sum(h["epoch_seconds"] for h in trainer.history)
            costs = distributed.from_main(lambda: measure_costs(trainer, bundle, checkpoints=run_dir is not None))
            keeper = TimeBudget(cfg.time_budget, spent=spent, start=deadline.start, step_seconds=costs.step,
                                epoch_end_seconds=costs.epoch_end(),
                                finish_seconds=costs.finish(view_count(trainer.recipe.tta()))
                                + report_reserve_seconds(cfg, run_dir))
    if deadline is not None:
        trainer.callbacks.insert(1, keeper)
        if device.type == "cpu" and len(thread_options()) > 1:
            trainer.callbacks.insert(2, ThreadTuner(thread_options()))  # after the keeper: it sees the final length
    return trainer


def _planned(cfg, bundle, device, deadline, make, checkpoints: bool, after: float, precision=None):
    """(trainer, plan) of a budgeted new run; under torchrun rank 0 measures and plans, the others follow."""
    made = {}

    def plan_here():
        made["trainer"], plan = plan_budget(cfg, bundle, device, deadline, make, checkpoints, after_seconds=after,
                                            choose_precision=precision)
        return plan

    plan = distributed.from_main(plan_here)
    trainer = made.get("trainer")
    if trainer is None:  # not rank 0: the same recipe, steps and layout as rank 0's
        trainer = make(plan.recipe)
        trainer.set_channels_last(plan.channels_last)
        trainer.set_precision(plan.dtype)
    return trainer, plan


def report_seconds() -> float:
    """What the report after training (RUN_DIR/report.html) is expected to take on a 2-core CPU."""
    from sortnet.reporting.layout import AFTER_TRAINING_OPTIONS  # light: the report's code loads matplotlib

    return AFTER_TRAINING_OPTIONS["dream_seconds"] + REPORT_OVERHEAD_SECONDS


def report_fits(cfg: TrainConfig) -> bool:
    """A time budget is the whole command, the report included: it is made only where it is a small share."""
    return not cfg.time_budget or report_seconds() <= REPORT_MAX_SHARE * cfg.time_budget


def report_reserve_seconds(cfg: TrainConfig, run_dir: Path | None) -> float:
    """Seconds of a whole-command budget kept for the report after the model file."""
    return report_seconds() if run_dir is not None and cfg.report and report_fits(cfg) else 0.0


def _report_skipped(cfg: TrainConfig, run_dir: Path, data: str) -> bool:
    if report_fits(cfg):
        return False
    if cfg.progress:
        print(terminal_safe(f"report: skipped, ~{report_seconds():.0f}s would not fit a {cfg.time_budget:g}s budget; "
                            f"make it with: sortnet report {run_dir / MODEL_FILE} {data}"), flush=True)
    return True


def _finish_deadline(trainer: Trainer, deadline: Deadline | None) -> Deadline | None:
    """The deadline the end of the run must meet: what the keeper kept (a resumed run has less left)."""
    keeper = next((cb for cb in trainer.callbacks if isinstance(cb, TimeBudget)), None)
    if deadline is None or keeper is None:
        return deadline
    return Deadline(keeper.remaining, deadline.start)


def _load_state(trainer: Trainer, state: dict, run_dir: Path | None, bundle: DataBundle) -> None:
    try:
        trainer.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        why = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise CheckpointError(f"{Path(run_dir or '.') / CHECKPOINT_NAME} does not belong to this run "
                              f"({trainer.recipe.model} on {bundle.data}): {why}. Restore the run's own checkpoint, "
                              "or start a new run with another --out") from e


def read_run_file(run_dir: Path) -> dict:
    """run.json of a run folder, checked: {"data": str, "config": dict, "recipe": dict}; ConfigError otherwise."""
    run_file = Path(run_dir) / RUN_FILE
    if not run_file.is_file():
        raise ConfigError(f"{run_dir} is not a sortnet run folder (no {RUN_FILE}); give the folder `train --out` made")
    try:
        saved = json.loads(run_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{run_file} is unreadable or not valid JSON ({e}); this run cannot be resumed, "
                          "start a new one") from e
    shape = {"data": str, "config": dict, "recipe": dict}
    if not isinstance(saved, dict) or any(not isinstance(saved.get(k), t) for k, t in shape.items()):
        raise ConfigError(f"{run_file} is not a sortnet run file (needs data, config and recipe); this run "
                          "cannot be resumed, start a new one")
    try:
        Recipe(**saved["recipe"])
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{run_file} holds a recipe this sortnet cannot read ({e}); start a new run") from e
    return saved


def write_run_file(run_dir: Path, data: str, cfg: TrainConfig, recipe: Recipe) -> None:
    payload = {"data": data, "config": cfg.to_dict(), "recipe": recipe.to_dict()}
    atomic_write_text(Path(run_dir) / RUN_FILE, dumps(payload, indent=2))


def _announce(cfg: TrainConfig, bundle: DataBundle, trainer: Trainer, device, dtype, run_dir, resumed: bool) -> None:
    if not cfg.progress:
        return
    p, recipe = bundle.preprocessing, trainer.recipe
    if resumed:
        print(f"resuming {run_dir} after epoch {trainer.epoch}/{recipe.epochs}", flush=True)
    counts = f"{len(bundle.train)} train / {len(bundle.val) if bundle.val else 0} val / " \
             f"{len(bundle.test) if bundle.test else 0} test"
    print(terminal_safe(f"data: {bundle.source}  {len(bundle.classes)} classes  {counts}  {p.img_size}px "
                        f"x{p.channels}"), flush=True)
    for note in bundle.notes + trainer.notes:
        print(terminal_safe(f"  {note}"), flush=True)  # notes name folders and classes from the disk
    prec = "fp32" if dtype is None else str(dtype).removeprefix("torch.")
    where = f"  run dir {run_dir}" if run_dir is not None else ""
    print(f"model: {recipe.model}  {recipe.epochs} epochs  batch {recipe.batch_size}  {recipe.optimizer} "
          f"lr {recipe.lr:g}  device {device} {prec}{where}", flush=True)
