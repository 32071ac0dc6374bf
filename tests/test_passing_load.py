"""A time-budgeted run planned while another program held the cores: what the plan fixes for the whole run
(the width of an auto model, the run's length class) is planned from the machine's remembered speed when the
load passes, and the thread count comes back once the steps speed up. Step times are faked.
"""

import pytest
import torch

from sortnet.models.registry import model_defaults
from sortnet.training.clock import Deadline
from sortnet.runs.planner import Costs, plan_budget
from sortnet.training.steptime import LOADED_RATIO, remember_step, remembered_step, unloaded_costs
from sortnet.training.threads import ThreadTuner
from test_budget import _bundle, _make, _trainer

CPU = torch.device("cpu")
PER_IMAGE = {"cnn-tiny": 1e-4, "cnn-small": 2e-4, "cnn": 1e-3}  # quiet seconds per training image


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path))


def _costs(step, eval_image=1e-4):
    return Costs(step, eval_image, 128, 64, 0.05, 0.0)


def test_steps_that_look_loaded_are_timed_again_and_the_faster_timing_is_planned_with():
    t = _trainer(_bundle())
    again = iter([_costs(0.031), _costs(0.021)])  # the other program ends during the second re-timing
    costs, note = unloaded_costs(t, _costs(0.06), lambda: next(again), max_seconds=10.0, known=0.02,
                                 sleep=lambda s: None)
    assert costs.step == 0.021 and "measured again: 21 ms" in note
    assert remembered_step(t) == 0.021  # nothing remembered before (known was given): the fastest is kept


def test_load_that_stays_during_planning_is_planned_around_with_the_remembered_speed():
    t = _trainer(_bundle())
    remember_step(t, 0.02)
    costs, note = unloaded_costs(t, _costs(0.06, eval_image=3e-4), lambda: _costs(0.06, 3e-4), max_seconds=10.0,
                                 sleep=lambda s: None)
    assert costs.step == 0.02 and costs.eval_image == pytest.approx(1e-4)  # evaluation slowed alike
    assert "look loaded" in note and "keeper shortens" in note
    assert remembered_step(t) == 0.02  # a loaded timing never replaces the quiet one


def test_no_memory_or_a_normal_timing_changes_nothing():
    t = _trainer(_bundle())
    calls = []
    costs, note = unloaded_costs(t, _costs(0.06), lambda: calls.append(1), max_seconds=10.0, sleep=lambda s: None)
    assert costs.step == 0.06 and note is None and not calls and remembered_step(t) == 0.06
    costs, note = unloaded_costs(t, _costs(0.06 * LOADED_RATIO * 0.99), lambda: calls.append(1), max_seconds=10.0,
                                 sleep=lambda s: None)
    assert note is None and not calls and remembered_step(t) == 0.06


def _plan(seconds, loaded_calls):
    """Plan an auto-width run where the first `loaded_calls` timings run 3x slow (another program)."""
    b = _bundle(test=64)
    cfg, make = _make(b, model="auto", batch_size=None, time_budget=seconds)
    calls = []

    def measure(trainer, bundle, checkpoints):
        calls.append(trainer.recipe.model)
        load = 3.0 if len(calls) <= loaded_calls else 1.0
        step = PER_IMAGE[trainer.recipe.model] * trainer.batch_size * load
        return Costs(step, 1e-4 * load, len(bundle.val), len(bundle.test), 0.05, 0.0)

    trainer, plan = plan_budget(cfg, b, CPU, Deadline(seconds), make, channels_last=True, measure=measure)
    return trainer.recipe.model, plan


def test_width_planned_under_a_passing_load_is_the_quiet_machines_width():
    need = model_defaults("cnn-small").size_min_images
    seconds = 3.0 * need * PER_IMAGE["cnn-small"]  # quiet: cnn-small sees enough; 3x loaded: it would not
    quiet_model, quiet = _plan(seconds, loaded_calls=0)  # also remembers the quiet step times
    assert quiet_model == "cnn-small"
    loaded_model, loaded = _plan(seconds, loaded_calls=100)  # the load lasts through all of planning
    assert loaded_model == "cnn-small" and loaded.steps == pytest.approx(quiet.steps, rel=0.05)
    assert any("look loaded" in n for n in loaded.notes)
    passing_model, passing = _plan(seconds, loaded_calls=1)  # gone by the second timing
    assert passing_model == "cnn-small" and passing.steps == pytest.approx(quiet.steps, rel=0.05)


def test_without_memory_a_loaded_plan_is_what_it_measured():
    """The behaviour this replaces, still that of a machine kind's first run: nothing to compare with."""
    need = model_defaults("cnn-small").size_min_images
    model, plan = _plan(3.0 * need * PER_IMAGE["cnn-small"], loaded_calls=100)
    assert model == "cnn-tiny" and not any("loaded" in n for n in plan.notes)


def test_thread_count_chosen_under_load_is_tried_again_when_the_steps_speed_up():
    """While another program holds a core, 2 threads take 40 ms a step and 1 thread 20 ms: the tuner picks 1.
    The load ends at step 30 (then 2 threads: 4 ms, 1 thread: 8 ms); the 1-thread steps get 2.5x faster, so
    the tuner times both again and goes back to 2, long before its 100 s periodic re-check. Fake clock."""
    now = [0.0]
    trainer = type("FakeTrainer", (), {"step": 0, "total_steps": 1000, "steps_per_epoch": 1000})()
    tuner = ThreadTuner([2, 1], recheck_seconds=100.0, clock=lambda: now[0])
    tuner.set_trainer(trainer)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []
    try:
        tuner.on_train_begin()
        for step in range(1, 120):
            two = torch.get_num_threads() == 2
            now[0] += (0.04 if two else 0.02) if step <= 30 else (0.004 if two else 0.008)
            trainer.step = step
            tuner.on_batch_end(step - 1)
            seen.append((step, torch.get_num_threads()))
    finally:
        torch.set_num_threads(before)
    assert all(n == 1 for s, n in seen if 15 <= s <= 30)  # under the load: 1 thread
    assert all(n == 2 for s, n in seen if s >= 60)  # after it: 2 again
    assert now[0] < 100.0 and [n for n, _ in tuner.log] == [2, 1, 2]
