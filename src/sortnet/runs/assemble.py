"""The one assembly of a training run: model, recipe, Trainer and the standard callbacks, new or resumed.

Every run that trains with the Trainer (from scratch here; the pretrained run's full fine-tuning in
runs/pretrained.py) gets the same callbacks: the progress bar; with a run folder TensorBoard and
checkpoints; with a budget the time keeper (training/budget.py) and, on a CPU, the thread tuner.

Usage:
    trainer = build_trainer(bundle, cfg, device, dtype, run_dir, callbacks, state, saved_recipe, deadline)
    trainer = make_trainer(model, bundle, cfg, recipe, device, dtype, run_dir, callbacks, balance)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sortnet.config import TrainConfig
from sortnet.data.dataset import DataBundle
from sortnet.device import thread_options
from sortnet.models.registry import create_model, input_normalization, model_defaults
from sortnet.runfolder.layout import CHECKPOINT_NAME, TENSORBOARD_DIR
from sortnet.runs.planner import PRECISION_MAX_SHARE, measure_costs, plan_budget, with_run_end
from sortnet.runs.recipe import augmentation, resolve_recipe
from sortnet.runs.report_reserve import report_reserve_seconds
from sortnet.training import distributed
from sortnet.training.budget import TimeBudget
from sortnet.training.callbacks import Callback, CheckpointSaver, ProgressBar, TensorBoardLogger
from sortnet.training.checkpoint import CheckpointError
from sortnet.training.clock import Deadline
from sortnet.training.precision import choose_precision, measures_precision
from sortnet.training.recipe import Recipe
from sortnet.training.threads import ThreadTuner
from sortnet.training.trainer import Trainer, resolve_balance
from sortnet.tta import view_count

WHITEN_SAMPLE = 5000  # images used to estimate patch statistics for whitening init
WHITEN_SAMPLE_BYTES = 192 << 20  # and at most this many uint8 bytes of them (bounds RAM for large images)


def standard_callbacks(cfg: TrainConfig, run_dir: Path | None) -> list[Callback]:
    """The progress bar; with a run folder TensorBoard event files and checkpoints."""
    callbacks: list[Callback] = [ProgressBar(cfg.progress)]
    if run_dir is not None:
        callbacks += [TensorBoardLogger(Path(run_dir) / TENSORBOARD_DIR), CheckpointSaver(run_dir)]
    return callbacks


def make_trainer(model, bundle: DataBundle, cfg: TrainConfig, recipe: Recipe, device, dtype, run_dir: Path | None,
                 user_callbacks: list[Callback] | None, balance: str) -> Trainer:
    return Trainer(model, bundle.train, bundle.val, recipe, device=device, dtype=dtype, seed=cfg.seed,
                   callbacks=standard_callbacks(cfg, run_dir) + list(user_callbacks or []), balance=balance,
                   compile=cfg.compile)


def class_weights(cfg: TrainConfig, labels: np.ndarray, k: int) -> torch.Tensor | None:
    """Loss weights n / (K * count) where --balance asks for any balancing (a head fitted on cached features
    has no sampler: "sampler" and "weights" both become loss weights); None for balance "none"."""
    counts = np.bincount(labels, minlength=k)
    balance, _ = resolve_balance(cfg.balance, counts)
    if balance == "none":
        return None
    return torch.from_numpy((counts.sum() / (k * np.maximum(counts, 1))).astype(np.float32))


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

    With a time budget (deadline) a new run is planned to fit it (runs/planner.py; under torchrun rank 0
    plans for all) and kept to it (training/budget.py); on a CPU the thread count is then chosen by
    measurement (training/threads.py). --precision auto on a CPU with native bf16 starts in fp32 and keeps
    bf16 only where it measured faster and trained like fp32 (training/precision.py; rank 0 measures).
    """
    balance, why = resolve_balance(cfg.balance, list(bundle.train.class_counts().values()))
    measured_precision = measures_precision(cfg.precision, device)
    if measured_precision:
        dtype = None  # fp32 until the measurement says bf16 pays here

    def make(recipe: Recipe, model=None) -> Trainer:
        model = model if model is not None else model_for_training(recipe.model, bundle, recipe.pretrained)
        return make_trainer(model, bundle, cfg, recipe, device, dtype, run_dir, user_callbacks, balance)

    notes = [f"balance: {balance} ({why})"]
    if state is None and deadline is not None:
        after = report_reserve_seconds(cfg, run_dir)
        trainer, plan = _planned(cfg, bundle, device, deadline, make, run_dir is not None, after,
                                 choose_precision if measured_precision else None)
        trainer.notes = notes + plan.notes
        keeper = TimeBudget(deadline.work_seconds, start=deadline.start, **plan.keeper_args())
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
            costs = with_run_end(distributed.from_main(lambda: measure_costs(trainer, bundle,
                                                                             checkpoints=run_dir is not None)),
                                 cfg, bundle, report_reserve_seconds(cfg, run_dir))
            keeper = TimeBudget(deadline.work_seconds, spent=spent, start=deadline.start, step_seconds=costs.step,
                                epoch_end_seconds=costs.epoch_end(),
                                finish_seconds=costs.finish(view_count(trainer.recipe.tta())))
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


def _load_state(trainer: Trainer, state: dict, run_dir: Path | None, bundle: DataBundle) -> None:
    try:
        trainer.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        why = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise CheckpointError(f"{Path(run_dir or '.') / CHECKPOINT_NAME} does not belong to this run "
                              f"({trainer.recipe.model} on {bundle.data}): {why}. Restore the run's own checkpoint, "
                              "or start a new run with another --out") from e
