"""--time-budget's planner: the recipe and the run's length that fit the budget on this machine.

The budget covers the whole command (training/clock.py), so the plan counts what is left of it after
start-up and subtracts what must happen after training: an epoch end per epoch (validation, checkpoint)
and the end of the run (final evaluation with its test-time-augmentation views, saving). All costs are
measured here on this machine — a few training steps and one evaluation batch on a copy of the model —
not assumed. With model "auto" the planner also picks the size of the network: models of one family that
name the same `size_group` in their ModelDefaults are measured smallest first, and the widest one that can
see its `size_min_images` training images within the budget is chosen (a short budget on a slow CPU
wants a narrow net; a long one, or a fast machine, a wider one). Test-time augmentation is dropped when
its extra views would take more than TTA_MAX_SHARE of the budget: that time buys more accuracy as
training. Every choice is explained in `plan.notes`.

Usage:
    trainer, plan = plan_budget(cfg, bundle, device, deadline, make_trainer, checkpoints=True)
    trainer.callbacks.append(TimeBudget(deadline.seconds, start=deadline.start, **plan.keeper_args()))
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from sortnet.config import TrainConfig
from sortnet.data.dataset import DataBundle
from sortnet.models.macs import module_macs
from sortnet.models.registry import create_model, size_group_models, model_defaults
from sortnet.training.budget import affordable_steps, safety_margin
from sortnet.training.clock import Deadline
from sortnet.training.fastpath import choose_layout
from sortnet.training.precision import remembered_precision
from sortnet.runs.recipe import augmentation, resolve_recipe
from sortnet.training.recipe import Recipe
from sortnet.training.steptime import unloaded_costs
from sortnet.training.trainer import Trainer
from sortnet.unknown.fit import unknown_fit_images
from sortnet.tta import view_count

GUESS_SLACK = 1.25  # bigger nets use the cores better than their compute ratio says
MEASURE_STEPS, MEASURE_WARMUP = 3, 1  # timed / untimed steps per candidate: the keeper corrects the rest
# Test-time augmentation is dropped when its extra views would cost more than this share of the budget.
TTA_MAX_SHARE = 0.05
LAYOUT_STEPS = 12  # steps timed by fastpath.choose_layout (both layouts, with warm-up)
LAYOUT_MAX_SHARE = 0.03  # of the budget, at most, for that measurement (else the cached or default layout)
PRECISION_MAX_SHARE = 0.02  # of the budget, at most, for timing fp32 against bf16 (training/precision.py)
RELOAD_MAX_SHARE = 0.03  # of the budget, at most, for timing again steps that looked loaded (training/steptime.py)
SAVE_BYTES_PER_SECOND = 200e6  # model file / checkpoint writes (safetensors + JSON, atomic rename)
SAVE_FIXED_SECONDS = 0.05


@dataclass
class BudgetPlan:
    recipe: Recipe
    steps: int
    step_seconds: float
    epoch_end_seconds: float  # validation + checkpoint after every epoch
    finish_seconds: float  # after the last step: final evaluation (TTA views counted) + model file
    eval_image_seconds: float  # one forward of one image view at evaluation
    channels_last: bool = True  # the memory layout chosen (training/fastpath.py)
    dtype: torch.dtype | None = None  # the training precision (None: fp32), as the chosen trainer had it
    notes: list[str] = field(default_factory=list)

    def keeper_args(self) -> dict:
        return {"step_seconds": self.step_seconds, "epoch_end_seconds": self.epoch_end_seconds,
                "finish_seconds": self.finish_seconds}


def save_seconds(model: torch.nn.Module, optimizer_copies: int = 0) -> float:
    """Writing the weights (plus optimizer state of that many weight-sized tensors, for checkpoints)."""
    n_bytes = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    return SAVE_FIXED_SECONDS + n_bytes * (1 + optimizer_copies) / SAVE_BYTES_PER_SECOND


@dataclass
class Costs:
    step: float
    eval_image: float
    n_val: int
    n_test: int
    save: float
    checkpoint: float
    after: float = 0.0  # after the model file: the report
    unknown_images: int = 0  # passed through the model by the unknown scorer's fit (unknown/fit.py), per view

    def epoch_end(self) -> float:
        return self.eval_image * self.n_val + self.checkpoint

    def finish(self, views: int) -> float:
        # the last epoch's validation pass is the final view-0 pass on val: only the extra views are new
        images = self.n_test * views + self.n_val * (views - 1) + self.unknown_images * views
        return self.eval_image * images + self.save + self.after


def with_run_end(costs: Costs, cfg: TrainConfig, bundle: DataBundle, after_seconds: float) -> Costs:
    """The costs with what the end of the run adds besides evaluation: the unknown scorer's fit and the report."""
    n_val = len(bundle.val) if bundle.val is not None else 0
    return dataclasses.replace(costs, after=after_seconds,
                               unknown_images=unknown_fit_images(cfg, len(bundle.train), n_val))


def measure_costs(trainer: Trainer, bundle: DataBundle, checkpoints: bool) -> Costs:
    step = trainer.measure_step_seconds(steps=MEASURE_STEPS, warmup_steps=MEASURE_WARMUP)
    eval_image = trainer.measure_eval_seconds(repeats=1)
    n_val = len(bundle.val) if bundle.val is not None else 0
    n_test = len(bundle.test) if bundle.test is not None else 0
    has_momentum = trainer.recipe.optimizer == "sgd"
    checkpoint = save_seconds(trainer.model, 1 if has_momentum else 2) if checkpoints else 0.0
    return Costs(step, eval_image, n_val, n_test, save_seconds(trainer.model), checkpoint)


def _steps_for(costs: Costs, views: int, left: float, steps_per_epoch: int) -> int:
    return affordable_steps(left - costs.finish(views), costs.step, costs.epoch_end(), steps_per_epoch, 0)


def plan_budget(cfg: TrainConfig, bundle: DataBundle, device: torch.device, deadline: Deadline,
                make_trainer: Callable[..., Trainer], checkpoints: bool = False,
                measure: Callable[[Trainer, DataBundle, bool], Costs] | None = None,
                channels_last: bool | None = None, after_seconds: float = 0.0,
                choose_precision: Callable[..., tuple[torch.dtype | None, str]] | None = None,
                ) -> tuple[Trainer, BudgetPlan]:
    """The Trainer of the planned run (its schedule set to the planned steps) and the plan behind it.

    make_trainer(recipe, model=None) builds a Trainer (a new model unless one is given); measure(trainer,
    bundle, checkpoints) -> Costs (default measure_costs: timed on this machine); channels_last: the memory
    layout (default: the faster one for this machine kind, training/fastpath.py); after_seconds: what the
    command still does after the model file (the report), counted in the finish; choose_precision(trainer,
    max_seconds=...) -> (dtype, why): --precision auto's measured choice (training/precision.py), made per
    candidate before its costs are measured. Steps that measure much slower than remembered for this machine
    kind are timed again, and a load that does not pass is not planned with (training/steptime.py).
    """
    base_measure = measure or measure_costs

    def measure(trainer, bundle, checkpoints):
        return with_run_end(base_measure(trainer, bundle, checkpoints), cfg, bundle, after_seconds)

    notes: list[str] = []
    chosen = None
    augment = augmentation(cfg, bundle)
    for arch in _candidates(cfg, bundle, device, augment):
        recipe = resolve_recipe(dataclasses.replace(cfg, model=arch), bundle, device, augment=augment)
        need = model_defaults(arch).size_min_images
        if chosen is not None:  # a wider net: first a guess from its compute, measured only if it may do
            ratio = _macs_per_image(arch, bundle) / _macs_per_image(chosen[0].model, bundle)
            guess = dataclasses.replace(chosen[2], step=chosen[2].step * ratio * recipe.batch_size
                                        / chosen[0].batch_size / GUESS_SLACK)
            if _images_for(guess, recipe, len(bundle.train), deadline) < need:
                notes.append(f"{arch}: ~{ratio:.1f}x the compute per image, too slow to see {need:,} images")
                break  # wider ones are slower still
        trainer = make_trainer(recipe)
        costs, precision_note = _precision_and_costs(trainer, bundle, checkpoints, deadline, measure,
                                                     choose_precision)
        costs, load_note = unloaded_costs(trainer, costs, lambda: measure(trainer, bundle, checkpoints),
                                          max_seconds=RELOAD_MAX_SHARE * deadline.seconds)
        images = _images_for(costs, recipe, len(bundle.train), deadline)
        notes.append(f"{arch}: {costs.step * 1000:.0f} ms/step -> {images:,} images in the budget"
                     + (f" (wants >= {need:,})" if need else ""))
        if chosen is not None and images < need:
            break
        chosen = (recipe, trainer, costs, [n for n in (precision_note, load_note) if n])
    recipe, trainer, costs, measured_notes = chosen
    # measuring the layout costs ~12 steps: only where that is a small part of the budget (else cached/default)
    if channels_last is None:
        channels_last, layout_why = choose_layout(
            trainer, may_measure=LAYOUT_STEPS * costs.step < LAYOUT_MAX_SHARE * deadline.seconds)
    else:
        layout_why = f"{'channels_last' if channels_last else 'NCHW'} (given)"
    trainer.set_channels_last(channels_last)
    plan = _length_plan(cfg, bundle, device, deadline, recipe, trainer, costs, augment)
    if len(notes) > 1:
        plan.notes.insert(0, f"model {recipe.model} chosen for the budget: " + "; ".join(notes))
    plan.channels_last, plan.dtype = channels_last, trainer.dtype
    plan.notes += measured_notes + [f"memory layout: {layout_why}"]
    if augment.note:
        plan.notes.append(augment.note)
    final = make_trainer(plan.recipe, model=trainer.model)
    final.set_channels_last(channels_last)
    final.set_precision(trainer.dtype)
    return final, plan


def _precision_and_costs(trainer: Trainer, bundle: DataBundle, checkpoints: bool, deadline: Deadline, measure,
                         choose_precision) -> tuple[Costs, str | None]:
    """The candidate's costs in its precision: --precision auto's remembered choice, else fp32 costs first and
    bf16 measured against them only where that fits PRECISION_MAX_SHARE of the budget (costs then re-timed)."""
    if choose_precision is None:
        return measure(trainer, bundle, checkpoints), None
    remembered = remembered_precision(trainer)
    if remembered is not None:
        trainer.set_precision(remembered[0])
        return measure(trainer, bundle, checkpoints), remembered[1]
    trainer.set_precision(None)
    costs = measure(trainer, bundle, checkpoints)
    dtype, why = choose_precision(trainer, max_seconds=PRECISION_MAX_SHARE * deadline.seconds, step_seconds=costs.step)
    if dtype is not None:
        trainer.set_precision(dtype)
        costs = measure(trainer, bundle, checkpoints)
    return costs, why


def tta_extra_seconds(costs: Costs, views: int) -> float:
    """Evaluation seconds that test-time augmentation's extra views add (val and test)."""
    return costs.eval_image * (costs.n_val + costs.n_test) * (views - 1)


def tta_pays(costs: Costs, views: int, deadline: Deadline) -> bool:
    """TTA is kept only while its extra views cost at most TTA_MAX_SHARE of the budget."""
    return views == 1 or tta_extra_seconds(costs, views) <= TTA_MAX_SHARE * deadline.seconds


def tta_that_pays(recipe: Recipe, costs: Costs, deadline: Deadline) -> tuple[Recipe, str | None]:
    """The recipe with the most test-time-augmentation views that pay (all of them, the mirror alone, or
    none), and a note when views were dropped."""
    views = view_count(recipe.tta())
    if tta_pays(costs, views, deadline):
        return recipe, None
    kept = dataclasses.replace(recipe, tta_shift=0)
    if not (recipe.tta_flip and tta_pays(costs, view_count(kept.tta()), deadline)):
        kept = dataclasses.replace(recipe, tta_flip=False, tta_shift=0)
    what = "mirror view kept, shifted views off" if kept.tta_flip else "off"
    return kept, (f"test-time augmentation {what}: its {views - 1} extra views would take "
                  f"{tta_extra_seconds(costs, views):.1f}s (> {TTA_MAX_SHARE:.0%} of the budget), better spent training")


def _images_for(costs: Costs, recipe: Recipe, n_train: int, deadline: Deadline) -> int:
    """Training images seen in what is left of the budget at these costs (TTA counted only where it pays,
    as the length plan will decide)."""
    batch = max(1, min(recipe.batch_size, n_train))
    left = deadline.remaining() - safety_margin(deadline.work_seconds)
    views = view_count(tta_that_pays(recipe, costs, deadline)[0].tta())
    return _steps_for(costs, views, left, max(1, n_train // batch)) * batch


def _macs_per_image(arch: str, bundle: DataBundle) -> float:
    """Forward multiply-adds per image of a fresh `arch` at the data's shape (models/macs.py)."""
    prep = bundle.preprocessing
    model = create_model(arch, prep.channels, len(bundle.classes), prep.img_size, prep.mean, prep.std)
    return float(max(module_macs(model, (prep.channels, prep.img_size, prep.img_size)), 1))


def _candidates(cfg: TrainConfig, bundle: DataBundle, device: torch.device, augment) -> list[str]:
    """Models to consider, narrowest first: the auto model's size group, or just the model asked for."""
    base = resolve_recipe(cfg, bundle, device, augment=augment).model
    if cfg.model != "auto":
        return [base]
    return size_group_models(base)


def _length_plan(cfg: TrainConfig, bundle: DataBundle, device: torch.device, deadline: Deadline,
                 recipe: Recipe, trainer: Trainer, costs: Costs, augment) -> BudgetPlan:
    """Steps, regularisation for that length, and whether test-time augmentation pays."""
    spe = trainer.steps_per_epoch
    left = deadline.remaining() - safety_margin(deadline.work_seconds)
    steps = max(1, _steps_for(costs, view_count(tta_that_pays(recipe, costs, deadline)[0].tta()), left, spe))
    recipe = resolve_recipe(dataclasses.replace(cfg, model=recipe.model), bundle, device, length=steps / spe,
                            augment=augment)
    recipe, note = tta_that_pays(recipe, costs, deadline)  # the recipe for this length may differ in its TTA
    notes = [note] if note else []
    views = view_count(recipe.tta())
    steps = max(1, _steps_for(costs, views, left, spe))
    recipe = dataclasses.replace(recipe, epochs=int(np.ceil(steps / spe)), total_steps=steps)
    notes.insert(0, f"time budget {deadline.seconds:g}s for the whole command: {deadline.elapsed():.1f}s gone "
                    f"before planning; {steps} steps planned ({steps / spe:.2f} epochs, ~{costs.step * 1000:.0f} "
                    f"ms/step), {costs.epoch_end():.1f}s per epoch end, {costs.finish(views):.1f}s to finish")
    return BudgetPlan(recipe, steps, costs.step, costs.epoch_end(), costs.finish(views), costs.eval_image,
                      notes=notes)
