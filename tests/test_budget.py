"""--time-budget: the whole command is the budget; the keeper re-plans both ways; the planner fits the machine.

Slow machines are simulated by callbacks that sleep (deterministic seconds per step); the planner is given
its costs and a clock that started earlier (the whole-command accounting) instead of timing this machine.
"""
import dataclasses
import json
import math
import re
import time

import numpy as np
import pytest
import torch

from clirun import run_cli
from conftest import make_class_folder
from sortnet.config import TrainConfig
from sortnet.data.dataset import DataBundle, ImageSet
from sortnet.data.preprocess import Preprocessing
from sortnet.models.registry import create_model, model_defaults
from sortnet.training.budget import TimeBudget, affordable_steps
from sortnet.training.callbacks import Callback
from sortnet.training.clock import Deadline, process_age
from sortnet.training.fastpath import choose_layout, machine_kind, workload_key
from sortnet.runs.finish import final_tta, held_out_logits
from sortnet.runs.planner import Costs, plan_budget
from sortnet.runs.recipe import resolve_recipe
from sortnet.training.schedule import Schedule
from sortnet.training.threads import ThreadTuner
from sortnet.training.trainer import Trainer
from sortnet.tta import TTA, view_count

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """Step times here are simulated by sleeps; one thread keeps real compute small and steady on a busy box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _bundle(n=256, size=12, k=3, seed=0, test=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n + test) % k
    x = rng.integers(0, 60, (n + test, 1, size, size)).astype(np.uint8)
    for c in range(k):  # class c: a bright horizontal band at a class-specific row
        x[y == c, :, 2 + 3 * c : 4 + 3 * c, :] = 220
    s = ImageSet(x, y, ["a", "b", "c"])
    prep = Preprocessing(size, 1, (0.3,), (0.3,))
    test_set = s.subset(np.arange(n, n + test)) if test else None
    return DataBundle(s.subset(np.arange(0, n, 2)), s.subset(np.arange(1, n, 2)), test_set, s.classes, prep,
                      "folder:x")


def _make(bundle, **cfg):
    cfg = TrainConfig(**{"model": "cnn-small", "epochs": 3, "batch_size": 32, **cfg})

    def make(recipe, model=None):
        if model is None:
            torch.manual_seed(0)
            model = create_model(recipe.model, 1, 3, bundle.preprocessing.img_size, (0.3,), (0.3,))
            if model_defaults(recipe.model).data_init:
                model.init_from_data(torch.as_tensor(bundle.train.images))
        return Trainer(model, bundle.train, bundle.val, recipe, device=CPU, dtype=None, seed=0)

    return cfg, make


def _trainer(bundle, **cfg):
    cfg, make = _make(bundle, **cfg)
    return make(resolve_recipe(cfg, bundle, CPU))


class Sleep(Callback):
    """Every step takes at least `seconds` more (a slower machine); `seconds` may change mid-run."""

    def __init__(self, seconds):
        self.seconds = seconds

    def on_batch_end(self, batch, logs=None):
        time.sleep(self.seconds)


# ---- the schedule follows a changed length without a jump -------------------------------------------

@pytest.mark.parametrize("kind", ["onecycle", "cosine"])
@pytest.mark.parametrize("new_total", [60, 150])
def test_schedule_changes_length_without_a_jump_and_ends_at_zero(kind, new_total):
    s = Schedule(kind, total_steps=100, warmup=0.1)
    before = [s(i) for i in range(41)]
    s.set_total(new_total, step=40)
    after = [s(i) for i in range(40, new_total + 1)]
    assert after[0] == pytest.approx(before[40])  # continuous where the change happened
    assert after[-1] == pytest.approx(0.0, abs=1e-9)  # and decays to 0 at the new end
    assert all(a >= b - 1e-12 for a, b in zip(after, after[1:]))
    reference = Schedule(kind, total_steps=100, warmup=0.1)
    assert (after[10] < reference(50)) == (new_total < 100)  # shorter: steeper; longer: gentler


def test_schedule_replanned_inside_warmup_scales_the_warmup_and_never_reopens_it_later():
    s = Schedule("onecycle", total_steps=100, warmup=0.1)
    s.set_total(300, step=3)  # still warming up: the warmup becomes 10% of the new length
    assert s.warmup_steps == 30 and s(29) == pytest.approx(1.0) and s(300) == pytest.approx(0.0)
    assert s(165) == pytest.approx(0.5, abs=0.01)  # linear decay over steps 30..300
    s.set_total(20, step=2)  # shortened below the warmup while in it: warmup 2 (its share), no jump at step 2
    assert s.warmup_steps == 3 and s(19) > 0.0 and s(20) == pytest.approx(0.0)
    s.set_total(1000, step=10)  # after the warmup: decay continues from the current value
    assert s.warmup_steps == 3 and s(10) == pytest.approx(1 - 7 / 17) and s(11) < s(10)


# ---- the keeper ---------------------------------------------------------------------------------------

def test_affordable_steps_counts_epoch_ends_hand_computed():
    # 10 s, 1 s per step, 2 s per epoch end, 4 steps per epoch, from step 0:
    # 6 steps end 2 epochs: 6 + 2*2 = 10 -> 6 (7 steps would need 7 + 4 = 11)
    assert affordable_steps(10.0, 1.0, 2.0, 4, 0) == 6
    assert affordable_steps(10.0, 1.0, 0.0, 4, 0) == 10
    assert affordable_steps(-1.0, 1.0, 0.0, 4, 0) == 0
    # from step 3 (inside epoch 1): 5 more steps end epochs 1 and 2 (steps 4 and 8): 5 + 4 = 9 <= 10
    assert affordable_steps(10.0, 1.0, 2.0, 4, 3) == 5


def test_keeper_shortens_when_behind_and_still_completes_the_schedule():
    t = _trainer(_bundle(), model="linear", epochs=50)  # far more than fits
    keeper = TimeBudget(1.5, margin=0.0)
    t.callbacks += [Sleep(0.02), keeper]
    planned, t0 = t.total_steps, time.monotonic()
    t.fit()
    assert keeper.shortened >= 1 and t.step == t.total_steps < planned
    assert t.opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # decayed to 0 at the new end
    assert time.monotonic() - t0 < 1.5 + 0.3  # one step and one validation of slack


def test_keeper_extends_when_ahead_and_uses_the_budget():
    """A plan made while the machine was busy (10 steps) is extended once the steps turn out fast."""
    t = _trainer(_bundle(), model="linear", epochs=100)
    t.set_total_steps(10)
    keeper = TimeBudget(1.5, start=time.monotonic(), margin=0.0)
    t.callbacks += [Sleep(0.01), keeper]
    t.fit()
    ended = keeper.training_ended_at - keeper.start
    assert keeper.extended >= 1 and t.step == t.total_steps > 10
    assert 1.5 * 0.9 <= ended <= 1.5 + 0.1  # training ends within 10% of the budget's end
    assert t.opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    lrs = [h["lr"] for h in t.history]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # extending never re-opened a higher lr


def test_keeper_follows_a_machine_that_slows_down_then_recovers():
    t = _trainer(_bundle(), model="linear", epochs=100)
    t.set_total_steps(40)
    sleep = Sleep(0.005)

    class Change(Callback):
        def on_batch_end(self, batch, logs=None):
            sleep.seconds = 0.04 if 10 <= self.trainer.step < 25 else 0.005

    keeper = TimeBudget(1.6, start=time.monotonic(), margin=0.0)
    t.callbacks += [sleep, Change(), keeper]
    t.fit()
    assert keeper.shortened >= 1 and keeper.extended >= 1
    assert keeper.training_ended_at - keeper.start <= 1.6 + 0.1


def test_keeper_reserves_what_the_end_of_the_run_needs():
    t = _trainer(_bundle(), model="linear", epochs=100)
    keeper = TimeBudget(1.5, start=time.monotonic(), finish_seconds=0.8, margin=0.0)
    t.callbacks += [Sleep(0.01), keeper]
    t.fit()
    assert keeper.training_ended_at - keeper.start <= 1.5 - 0.8 + 0.1


# ---- the planner: the whole command, measured costs ----------------------------------------------------

def _fixed_costs(step=0.01, eval_image=1e-4, checkpoint=0.0):
    def measure(trainer, bundle, checkpoints):
        n_val = len(bundle.val) if bundle.val is not None else 0
        n_test = len(bundle.test) if bundle.test is not None else 0
        return Costs(step, eval_image, n_val, n_test, 0.05, checkpoint)
    return measure


def test_keeper_scales_the_finish_estimate_when_steps_run_slower_than_planned():
    """Planned at 10 ms/step with a 0.4 s finish; the steps take ~40 ms (the machine got busy), so the
    evaluation after training will be slower too: the keeper keeps ~4x the finish free, not 0.4 s."""
    t = _trainer(_bundle(), model="linear", epochs=100)
    keeper = TimeBudget(2.0, start=time.monotonic(), step_seconds=0.01, finish_seconds=0.4, margin=0.0)
    t.callbacks += [Sleep(0.04), keeper]
    t.fit()
    ended = keeper.training_ended_at - keeper.start
    assert ended <= 2.0 - 4 * 0.4 * 0.8 + 0.1  # well before 2.0 - 0.4 = 1.6
    steady = TimeBudget(2.0, start=time.monotonic(), step_seconds=0.04, finish_seconds=0.4, margin=0.0)
    t2 = _trainer(_bundle(), model="linear", epochs=100)
    t2.callbacks += [Sleep(0.04), steady]
    t2.fit()
    assert steady.training_ended_at - steady.start >= 2.0 - 0.4 - 0.25  # as planned: only the finish is kept


def test_planner_counts_the_time_already_gone_since_the_command_started():
    b = _bundle(test=64)
    cfg, make = _make(b, time_budget=10.0)
    fresh, plan_fresh = plan_budget(cfg, b, CPU, Deadline(10.0), make, channels_last=True,
                                    measure=_fixed_costs())
    late, plan_late = plan_budget(cfg, b, CPU, Deadline(10.0, start=time.monotonic() - 6.0), make,
                                  channels_last=True, measure=_fixed_costs())
    for plan in (plan_fresh, plan_late):  # planned training + epoch ends + finish fit the time that was left
        epochs = math.ceil(plan.steps / fresh.steps_per_epoch)
        assert plan.steps * plan.step_seconds + epochs * plan.epoch_end_seconds + plan.finish_seconds <= 10.0
    assert late.total_steps == plan_late.steps and late.recipe.total_steps == plan_late.steps
    # 6 s gone of 10: about 40% of the steps (margin and finish are the same for both)
    assert 0.3 < plan_late.steps / plan_fresh.steps < 0.45
    gone = float(re.search(r"([\d.]+)s gone before planning", plan_late.notes[0]).group(1))
    assert 6.0 <= gone < 7.5


def test_planner_drops_tta_when_its_views_cost_more_than_they_give():
    b = _bundle(test=64)
    cfg, make = _make(b, time_budget=10.0, augment="flip")
    _, cheap = plan_budget(cfg, b, CPU, Deadline(10.0), make, channels_last=True,
                           measure=_fixed_costs(eval_image=1e-5))
    _, dear = plan_budget(cfg, b, CPU, Deadline(10.0), make, channels_last=True,
                          measure=_fixed_costs(eval_image=0.01))
    assert view_count(cheap.recipe.tta()) == 2 and view_count(dear.recipe.tta()) == 1
    assert any("test-time augmentation off" in n for n in dear.notes)
    # the views it keeps are paid for: finish = test * views + val * (views - 1) image views + saving, and the
    # unknown scorer's fit (unknown/fit.py): its training sample (all 128 here) and val, each with the views
    assert cheap.finish_seconds == pytest.approx(1e-5 * (64 * 2 + 128 * 1 + (128 + 128) * 2) + 0.05)


def test_planner_picks_a_wider_net_only_when_the_budget_lets_it_see_enough_images():
    b = _bundle(test=64)
    cfg, make = _make(b, model="auto", batch_size=None, time_budget=30.0)
    cost_per_image = {"cnn-tiny": 1e-4, "cnn-small": 2e-4, "cnn": 1e-3}  # seconds per training image

    def measure(trainer, bundle, checkpoints):
        return dataclasses.replace(_fixed_costs()(trainer, bundle, checkpoints),
                                   step=cost_per_image[trainer.recipe.model] * trainer.batch_size)

    need = model_defaults("cnn-small").size_min_images
    short = 0.5 * need * cost_per_image["cnn-small"]  # cnn-small would see half of what it needs
    long = 3.0 * need * cost_per_image["cnn-small"]
    picks = {}
    for name, seconds in (("short", short), ("long", long)):
        trainer, plan = plan_budget(dataclasses.replace(cfg, time_budget=seconds), b, CPU, Deadline(seconds),
                                    make, channels_last=True, measure=measure)
        picks[name] = trainer.recipe.model
        assert plan.notes[0].startswith(f"model {trainer.recipe.model} chosen for the budget")
    assert picks == {"short": "cnn-tiny", "long": "cnn-small"}


def test_model_choice_counts_test_time_augmentation_only_where_it_pays():
    """The images a candidate net sees are counted with the TTA the length plan will keep: views that cost
    more than TTA_MAX_SHARE of the budget are dropped there, so they must not eat the candidate's budget here."""
    from sortnet.runs.planner import _images_for

    b = _bundle(test=64)
    cfg, _ = _make(b, time_budget=10.0)
    recipe = dataclasses.replace(resolve_recipe(cfg, b, CPU), batch_size=100, tta_flip=True, tta_shift=0)
    costs = Costs(step=0.01, eval_image=0.01, n_val=100, n_test=100, save=0.0, checkpoint=0.0)
    # 2 views would add 0.01 * 200 = 2 s > 5% of 10 s: dropped. Without them: 10 - 0.2 margin - 1 s finish
    # = 8.8 s for k steps + an epoch end (1 s) per 100 steps -> 400 steps (4 + 4 s) -> 40,000 images;
    # counting the views (3 s finish) would have given 300 steps.
    assert _images_for(costs, recipe, 10_000, Deadline(10.0)) == 40_000


def test_planner_keeps_the_mirror_view_when_only_the_shifted_views_are_too_dear():
    from sortnet.runs.planner import tta_that_pays

    b = _bundle(test=64)
    cfg, _ = _make(b, time_budget=10.0)
    full = dataclasses.replace(resolve_recipe(cfg, b, CPU), tta_flip=True, tta_shift=1)
    assert view_count(full.tta()) == 6
    # 5 extra views x 200 images x 1 ms = 1 s > 5% of 10 s; the mirror alone: 0.2 s -> kept
    cheap = Costs(step=0.01, eval_image=0.001, n_val=100, n_test=100, save=0.0, checkpoint=0.0)
    kept, note = tta_that_pays(full, cheap, Deadline(10.0))
    assert (kept.tta_flip, kept.tta_shift) == (True, 0) and "mirror view kept" in note
    dear = dataclasses.replace(cheap, eval_image=0.01)  # the mirror alone: 2 s -> off
    kept, note = tta_that_pays(full, dear, Deadline(10.0))
    assert (kept.tta_flip, kept.tta_shift) == (False, 0) and "augmentation off" in note
    assert tta_that_pays(full, cheap, Deadline(1000.0)) == (full, None)  # a long budget keeps all six


def test_model_given_by_the_user_is_kept():
    b = _bundle(test=64)
    cfg, make = _make(b, model="cnn", time_budget=0.5)
    trainer, _ = plan_budget(cfg, b, CPU, Deadline(0.5), make, channels_last=True, measure=_fixed_costs())
    assert trainer.recipe.model == "cnn"


# ---- the end of the run ------------------------------------------------------------------------------------

def test_final_evaluation_reuses_the_last_validation_and_skips_tta_that_would_pass_the_deadline():
    b = _bundle(test=64)
    t = _trainer(b, epochs=1, augment="flip")
    t.fit()
    val_logits = held_out_logits(t, b.val, TTA())
    assert val_logits is t.last_val[1]  # no second pass over val
    assert torch.allclose(val_logits, t.predict(b.val.images), atol=1e-5)
    assert final_tta(t, b, None) == (TTA(flip=True), None)
    assert final_tta(t, b, Deadline(1000.0))[0] == TTA(flip=True)
    tta, why = final_tta(t, b, Deadline(0.01))
    assert tta == TTA() and "would pass the time budget" in why


def test_process_age_is_the_time_since_this_process_started():
    age = process_age()
    if age is None:
        pytest.skip("no /proc on this system")
    assert 0.0 < age < 3600.0


@pytest.mark.slow
def test_whole_command_fits_the_budget(tmp_path):
    """The real CLI: launch to model file within the budget; the budget is used, not wasted."""
    root = make_class_folder(tmp_path, classes=3, per_class=40, size=12, mode="L", splits={"train": 40, "test": 10})
    out = tmp_path / "run"
    budget = 12.0
    t0 = time.monotonic()
    run_cli("train", root, "--out", out, "--time-budget", f"{budget:g}s", "--no-progress", "--no-check")
    wall = time.monotonic() - t0
    report = json.loads((out / "metrics.json").read_text())["budget"]
    if report["training_began"] > budget / 2:  # start-up alone took half the budget: nothing left to judge
        pytest.skip(f"machine too busy: training began {report['training_began']}s into a {budget:g}s budget")
    assert report["used_seconds"] <= budget and wall <= budget + 1.5  # + the interpreter's exit
    assert report["used_seconds"] >= 0.9 * budget  # the keeper extended the plan to use the budget


# ---- threads -----------------------------------------------------------------------------------------------

def test_thread_tuner_moves_to_the_count_that_is_faster_now():
    """Simulated contention: steps with 2 threads take 30 ms, with 1 thread 5 ms -> the tuner picks 1."""
    torch.set_num_threads(2)
    t = _trainer(_bundle(n=1024), model="linear", epochs=1, batch_size=16)

    class Contended(Callback):
        def on_batch_end(self, batch, logs=None):
            time.sleep(0.03 if torch.get_num_threads() == 2 else 0.005)

    tuner = ThreadTuner([2, 1], recheck_seconds=100.0)
    t.callbacks += [Contended(), tuner]
    t.fit()
    assert torch.get_num_threads() == 1 and tuner.chosen_mean is not None
    assert {n for n, _ in tuner.log} == {1, 2}


def test_layout_is_measured_once_per_machine_kind_and_remembered(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path))
    t = _trainer(_bundle())
    assert choose_layout(t, may_measure=False)[0] is True  # nothing cached, no time: the default
    channels_last, why = choose_layout(t, may_measure=True)
    assert "measured now" in why
    cache = json.loads((tmp_path / "fastpath.json").read_text())
    entry = cache[machine_kind()][workload_key(t)]
    assert entry["channels_last"] == channels_last and set(entry["ms"]) == {"channels_last", "nchw"}
    entry["channels_last"] = False  # what another machine of this kind found is used without measuring
    (tmp_path / "fastpath.json").write_text(json.dumps(cache))
    channels_last, why = choose_layout(t, may_measure=True)
    assert channels_last is False and "measured earlier" in why
    t.set_channels_last(False)
    assert t.augment(t.x[:4], torch.arange(4), torch.Generator()).is_contiguous()


def test_thread_trial_in_progress_is_abandoned_before_validation():
    """A trial that is timing another count when the epoch (or run) ends goes back to the incumbent, so
    validation and the final evaluation never run on a count that is only being tried."""
    torch.set_num_threads(2)
    t = _trainer(_bundle(n=160), model="linear", epochs=1, batch_size=16)  # 5 steps: 1 untimed, 2 on 2, then 1
    seen = []

    class ThreadsAtEpochEnd(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(torch.get_num_threads())

    tuner = ThreadTuner([2, 1], recheck_seconds=100.0, trial_steps=2)
    t.callbacks += [tuner, ThreadsAtEpochEnd()]
    t.fit()
    assert t.step == t.steps_per_epoch == 5
    assert tuner.switches >= 2  # it did try 1 thread, then came back
    assert seen == [2] and torch.get_num_threads() == 2


def test_short_budget_run_loads_no_report_or_plotting_code(tmp_path):
    """Imports count against a whole-command budget: a run whose report is skipped must not load matplotlib
    (reporting) or torch._dynamo (~1-2 s of a 20 s budget on a 2-core machine)."""
    import subprocess
    import sys

    data = make_class_folder(tmp_path, classes=2, per_class=12, size=12)
    script = ("import sys\nfrom sortnet.cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
              "    assert not e.code, e.code\nprint(sorted(m for m in ('matplotlib', 'torch._dynamo', 'optuna') "
              "if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", script, "train", str(data), "--time-budget", "4s", "--out",
                           str(tmp_path / "run"), "--no-progress"], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout
    assert (tmp_path / "run" / "model.safetensors").exists() and not (tmp_path / "run" / "report.html").exists()


def test_deadline_shares_cut_what_is_left_with_a_floor():
    """share(): a fraction of what is left after the reserve and the exit, never below `minimum`; until(): the same
    end less the reserve. Hand-computed on a deadline whose clock started 4 s ago."""
    d = Deadline(20.0, time.monotonic() - 4.0, exit_seconds=0.5)
    half = d.share(0.5, reserve=1.5)  # left: 20 - 0.5 - 1.5 - 4 = 14 -> 7
    assert half.seconds == pytest.approx(7.0, abs=0.05) and half.remaining() == pytest.approx(7.0, abs=0.05)
    assert d.share(0.01, minimum=2.0).seconds == 2.0  # 0.155 s would be too short: the floor
    assert d.share(1.0, minimum=2.0).seconds == pytest.approx(15.5, abs=0.05)
    assert d.until(reserve=3.0).seconds == pytest.approx(12.5, abs=0.05)
    assert Deadline(1.0, time.monotonic() - 5.0).share(0.5).seconds == 0.0  # over: nothing, not negative
