"""--precision auto on a CPU: bf16 only where it measured faster and trained like fp32; remembered per machine kind.

Timings are faked (a probe that returns chosen step seconds and losses); the real probe is checked to run the
same batches from the same weights in both precisions without touching the run (bf16 autocast runs on any
CPU, emulated where there are no native instructions).
"""
import json
import math
import os

import numpy as np
import pytest
import torch

from sortnet.data.dataset import DataBundle, ImageSet
from sortnet.data.preprocess import Preprocessing
from sortnet.device import cpu_supports_bf16
from sortnet.training import precision
from sortnet.training.fastpath import machine_kind
from sortnet.training.precision import choose_precision, measures_precision
from sortnet.training.recipe import Recipe
from sortnet.training.trainer import Trainer
from sortnet.models.registry import create_model

CPU = torch.device("cpu")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path))
    return tmp_path / "fastpath.json"


def _trainer(model="cnn-tiny", n=64, size=12, batch=16):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = rng.integers(0, 40, (n, 1, size, size)).astype(np.uint8)
    x[y == 1, :, 3:6, :] = 230
    s = ImageSet(x, y, ["a", "b"])
    torch.manual_seed(0)
    net = create_model(model, 1, 2, size, (0.2,), (0.3,))
    recipe = Recipe(model=model, epochs=1, batch_size=batch, lr=0.05, optimizer="sgd", weight_decay=5e-4,
                    schedule="onecycle", warmup=0.1, label_smoothing=0.0, flip=False, translate=0, rrc=False,
                    tta_flip=False, tta_shift=0)
    return Trainer(net, s, s, recipe, device=CPU, dtype=None, seed=0)


def _fake(ms: dict, loss: dict, calls: list | None = None):
    """A probe whose steps take ms[precision] milliseconds and have loss[precision]."""
    def probe(trainer, dtype):
        name = "fp32" if dtype is None else "bf16"
        if calls is not None:
            calls.append(name)
        return [ms[name] / 1000] * 3, [loss[name]] * 3
    return probe


def test_bf16_kept_only_when_clearly_faster_and_remembered(cache):
    t, calls = _trainer(), []
    dtype, why = choose_precision(t, probe=_fake({"fp32": 50, "bf16": 40}, {"fp32": 0.7, "bf16": 0.71}, calls))
    assert dtype is torch.bfloat16 and "measured now" in why and "40 ms/step bf16 vs 50 fp32" in why
    assert calls == ["fp32", "bf16"] * precision.ROUNDS  # interleaved: a load slows both alike
    # the same workload on this machine kind: the remembered choice, nothing measured (repeatable runs)
    again, why = choose_precision(t, probe=_fake({"fp32": 10, "bf16": 90}, {"fp32": 0.7, "bf16": 0.7}, calls))
    assert again is torch.bfloat16 and "measured earlier" in why and len(calls) == 2 * precision.ROUNDS
    entry = json.loads(cache.read_text())[machine_kind()]
    assert [e["precision"] for k, e in entry.items() if k.startswith("precision|")] == ["bf16"]


def test_bf16_only_a_little_faster_stays_fp32(cache):
    dtype, why = choose_precision(_trainer(), probe=_fake({"fp32": 50, "bf16": 47}, {"fp32": 0.7, "bf16": 0.7}))
    assert dtype is None and why.startswith("precision: fp32") and "not 10% faster" in why


@pytest.mark.parametrize("bad", [math.nan, math.inf, 2.5])
def test_bf16_that_does_not_train_like_fp32_stays_fp32_however_fast(cache, bad):
    dtype, why = choose_precision(_trainer(), probe=_fake({"fp32": 50, "bf16": 20}, {"fp32": 0.7, "bf16": bad}))
    assert dtype is None and "does not train as well" in why


def test_bf16_faster_in_one_round_of_three_only_stays_fp32(cache):
    """A burst of another program during one round's fp32 steps must not decide for bf16."""
    rounds = iter([0.2, 0.04, 0.05, 0.048, 0.05, 0.047])  # round 1: fp32 slowed by a burst; then the same

    def probe(trainer, dtype):
        return [next(rounds)] * 3, [0.7] * 3

    dtype, why = choose_precision(_trainer(), probe=probe)
    assert dtype is None and "not 10% faster" in why


def test_measurement_that_would_not_fit_the_budget_stops_early_and_is_not_remembered(cache):
    clock = iter([0.0, 3.0, 3.0, 3.0])  # the first round took 3 s: two rounds would take 6 s > 2 s allowed
    calls = []
    dtype, why = choose_precision(_trainer(), max_seconds=2.0, clock=lambda: next(clock),
                                  probe=_fake({"fp32": 50, "bf16": 20}, {"fp32": 0.7, "bf16": 0.7}, calls))
    assert dtype is None and "not measured" in why and len(calls) == 2
    assert not cache.exists()


def test_measurement_that_cannot_fit_at_the_measured_step_time_is_not_started(cache):
    calls = []
    dtype, why = choose_precision(_trainer(), max_seconds=1.0, step_seconds=0.1,  # 16 steps: 1.6 s > 1 s
                                  probe=_fake({"fp32": 50, "bf16": 20}, {"fp32": 0.7, "bf16": 0.7}, calls))
    assert dtype is None and "not measured" in why and calls == [] and not cache.exists()


def test_budget_planner_measures_precision_before_the_costs_and_hands_it_on(cache):
    """The chosen precision is the final trainer's and the plan's (torchrun's other ranks take it from there);
    the costs the plan is made from are timed in that precision."""
    from sortnet.config import TrainConfig
    from sortnet.training.clock import Deadline
    from sortnet.runs.planner import Costs, plan_budget

    t = _trainer()
    bundle = DataBundle(ImageSet(t.x.numpy(), t.y.numpy(), ["a", "b"]), None, None, ["a", "b"],
                        Preprocessing(12, 1, (0.2,), (0.3,)), "folder:x")
    cfg = TrainConfig(model="cnn-tiny", batch_size=16, time_budget=100.0)
    timed, asked = [], []

    def make(recipe, model=None):
        return Trainer(model or create_model(recipe.model, 1, 2, 12, (0.2,), (0.3,)), bundle.train, None,
                       recipe, device=CPU, dtype=None, seed=0)

    def measure(trainer, bundle, checkpoints):
        timed.append(trainer.dtype)
        return Costs(0.01, 1e-4, 0, 0, 0.05, 0.0)

    def choose(trainer, max_seconds, step_seconds):
        asked.append((max_seconds, step_seconds))
        return torch.bfloat16, "precision: bf16 (fake)"

    final, plan = plan_budget(cfg, bundle, CPU, Deadline(100.0), make, channels_last=True, measure=measure,
                              choose_precision=choose)
    assert asked == [(pytest.approx(2.0), 0.01)]  # 2% of the budget; the fp32 step measured first
    assert timed[0] is None and timed[-1] is torch.bfloat16  # costs re-timed in bf16
    assert final.dtype is torch.bfloat16 and plan.dtype is torch.bfloat16 and "precision: bf16 (fake)" in plan.notes


def test_only_auto_on_a_cpu_with_native_bf16_is_measured():
    assert measures_precision("auto", CPU, native_bf16=True)
    assert not measures_precision("auto", CPU, native_bf16=False)  # emulated bf16: fp32, no measuring
    assert not measures_precision("bf16", CPU, native_bf16=True)  # explicit precision is obeyed
    assert not measures_precision("fp32", CPU, native_bf16=True)
    assert not measures_precision("auto", torch.device("cuda"), native_bf16=True)


def test_real_probe_runs_both_precisions_from_the_same_start_and_leaves_the_run_untouched():
    t = _trainer()
    before = [p.detach().clone() for p in t.model.parameters()]
    rng = torch.get_rng_state()
    times32, loss32 = t.probe_steps(2, 1, dtype=None)
    times16, loss16 = t.probe_steps(2, 1, dtype=torch.bfloat16)
    assert len(times32) == len(loss16) == 2 and all(s > 0 for s in times16)
    assert all(math.isfinite(v) for v in loss32 + loss16)
    assert loss16 == pytest.approx(loss32, rel=0.1, abs=0.05)  # same batches, same weights
    assert t.probe_steps(2, 1, dtype=None)[1] == loss32  # seeded: the same batches every call
    assert t.dtype is None and t.step == 0 and torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(a, b) for a, b in zip(before, t.model.parameters()))


@pytest.mark.slow
def test_fit_with_auto_precision_says_what_it_chose(tmp_path, capsys):
    """The real run: on a CPU with native bf16 a 'precision:' line with the measured choice, and the model line
    shows it; elsewhere fp32 without measuring."""
    import sortnet

    rng = np.random.default_rng(0)
    y = np.arange(96) % 2
    x = rng.integers(0, 40, (96, 1, 12, 12)).astype(np.uint8)
    x[y == 1, :, 3:6, :] = 230
    s = ImageSet(x, y, ["a", "b"])
    bundle = DataBundle(s.subset(np.arange(64)), s.subset(np.arange(64, 96)), None, s.classes,
                        Preprocessing(12, 1, (0.2,), (0.3,)), "folder:x")
    bundle.data, bundle.settings = "x", {}
    sortnet.fit(bundle, model="cnn-tiny", epochs=1, batch_size=16, precision="auto", progress=True)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "precision:" in line]
    if cpu_supports_bf16():
        assert len(lines) == 1 and "measured now" in lines[0]
        chosen = lines[0].split("precision: ")[1].split()[0]
        assert f"device cpu {'bfloat16' if chosen == 'bf16' else 'fp32'}" in out
    else:
        assert not lines and "device cpu fp32" in out
    assert os.environ["SORTNET_CACHE"]  # the session's own cache, not the developer's

