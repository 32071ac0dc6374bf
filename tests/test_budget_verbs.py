"""Every budgeted verb ends within 3% of its --time-budget and uses at least 90% of it when there is work left.

One test per verb, each running the real CLI (tests/clirun.py) on tiny real data under a small budget:
`train` from scratch (scikit-learn's digits), `train` on a pretrained backbone (a few hymenoptera photos),
`train --ensemble 2`, `ladder`, `curve` and `search`. The budget counts from the process's launch
(training/clock.py), so the wall time measured here, from just before the launch, is what is judged.

The machine these run on is shared and noisy: a load spike during the last seconds (the final evaluation,
the interpreter's exit) can push the wall time past the bound without sortnet doing anything wrong. So the
upper bound is asserted on what sortnet controls: the moment its last file is written (the model file's
`used_seconds` in metrics.json's budget entry, or the newest file's time for the table verbs) within 3%, and
the wall time within 3% plus EXIT_ALLOWANCE_S for the exit. The lower bound (>= 90%) is on the wall time.
Where the upper bound is missed while other programs held the cores (1-minute load average above
BUSY_LOAD_PER_CORE x cores before or after the run: this suite alone keeps it near 1-2 on 2 cores), the bound
cannot be judged and the test is skipped with the figures; on a machine of its own (CI) it is asserted.

Usage:
    pytest -q tests/test_budget_verbs.py
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from clirun import run_cli
from conftest import make_class_folder

# real photos where the workplace has them (../shared/data beside the checkout), else generated 80 px ones
HYMENOPTERA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera"
UPPER, LOWER = 1.03, 0.90
EXIT_ALLOWANCE_S = 1.0  # the interpreter's exit after the last file on a loaded 2-core machine (0.3 s when quiet)


BUSY_LOAD_PER_CORE = 1.5
_LOADS: list[float] = []  # 1-minute load averages around the current test's run


def _timed(*args) -> tuple[float, float, str]:
    """(wall clock time.time() just before the launch, wall seconds, stdout) of `sortnet ARGS`."""
    _LOADS[:] = [os.getloadavg()[0]]
    t0, m0 = time.time(), time.monotonic()
    proc = run_cli(*args, timeout=240)
    wall = time.monotonic() - m0
    _LOADS.append(os.getloadavg()[0])
    return t0, wall, proc.stdout


def _last_write(out: Path, t0: float) -> float:
    """Seconds from the launch to the newest file written under out."""
    return max(p.stat().st_mtime for p in Path(out).rglob("*") if p.is_file()) - t0


def _check(budget: float, wall: float, sortnet_end: float, what: str) -> None:
    assert wall >= LOWER * budget, f"{what}: used only {wall:.2f}s of a {budget:g}s budget"
    over = sortnet_end > UPPER * budget or wall > UPPER * budget + EXIT_ALLOWANCE_S
    busy = max(_LOADS, default=0.0) > BUSY_LOAD_PER_CORE * (os.cpu_count() or 1)
    if over and busy:
        pytest.skip(f"{what}: last file at {sortnet_end:.2f}s, exit at {wall:.2f}s of a {budget:g}s budget while "
                    f"other programs held the cores (load {max(_LOADS):.1f} on {os.cpu_count()}): not judged")
    assert sortnet_end <= UPPER * budget, f"{what}: last file at {sortnet_end:.2f}s of a {budget:g}s budget"
    assert wall <= UPPER * budget + EXIT_ALLOWANCE_S, f"{what}: ended at {wall:.2f}s of a {budget:g}s budget"


def _used(metrics_file: Path) -> float:
    return json.loads(metrics_file.read_text())["budget"]["used_seconds"]


def test_train_from_scratch_uses_its_budget(tmp_path):
    """`sortnet train digits --time-budget 15s`: the model file's used_seconds and the wall time."""
    budget, out = 15.0, tmp_path / "run"
    _, wall, _ = _timed("train", "digits", "--out", out, "--time-budget", f"{budget:g}s", "--no-progress")
    _check(budget, wall, _used(out / "metrics.json"), "train")


def _photos(root: Path, per_class: int, val_per_class: int) -> Path:
    """A small copy of the hymenoptera photos: train/ and val/ with ants and bees (generated 80 px photos of two
    classes where the real ones are not on this machine: the pretrained path all the same)."""
    if not HYMENOPTERA.is_dir():
        return make_class_folder(root.parent, classes=2, per_class=per_class + val_per_class, size=80,
                                 name=root.name)
    for split, n in (("train", per_class), ("val", val_per_class)):
        for cls in ("ants", "bees"):
            (root / split / cls).mkdir(parents=True)
            for src in sorted((HYMENOPTERA / split / cls).glob("*.jpg"))[:n]:
                shutil.copy(src, root / split / cls / src.name)
    return root


def test_train_on_a_pretrained_backbone_uses_its_budget(tmp_path):
    """Photos -> the pretrained backbone (features, head, fine-tuning as the budget allows) within 30 s."""
    data = _photos(tmp_path / "photos", per_class=24, val_per_class=10)
    budget, out = 30.0, tmp_path / "run"
    _, wall, stdout = _timed("train", data, "--out", out, "--time-budget", f"{budget:g}s", "--no-progress")
    meta = json.loads((out / "run.json").read_text())
    assert meta["recipe"]["pretrained"], stdout
    _check(budget, wall, _used(out / "metrics.json"), "train (pretrained)")


def test_train_ensemble_uses_its_budget(tmp_path):
    """`--ensemble 2`: members share the budget; the ensemble's model file's used_seconds and the wall time."""
    budget, out = 20.0, tmp_path / "ens"
    _, wall, _ = _timed("train", "digits", "--ensemble", "2", "--out", out, "--time-budget", f"{budget:g}s",
                        "--no-progress")
    _check(budget, wall, _used(out / "metrics.json"), "train --ensemble 2")


def test_ladder_uses_its_budget(tmp_path):
    """Three rungs in 20 s: a rung that ends early leaves its time to the next."""
    budget, out = 20.0, tmp_path / "ladder"
    t0, wall, _ = _timed("ladder", "digits", "--rungs", "linear,mlp,cnn", "--out", out, "--time-budget",
                         f"{budget:g}s", "--no-progress")
    _check(budget, wall, _last_write(out, t0), "ladder")


def test_curve_uses_its_budget(tmp_path):
    """Two sizes, one seed, 15 s."""
    budget, out = 15.0, tmp_path / "curve"
    t0, wall, _ = _timed("curve", "digits", "--fractions", "50,100", "--seeds", "1", "--out", out,
                         "--time-budget", f"{budget:g}s", "--no-progress")
    _check(budget, wall, _last_write(out, t0), "curve")


def test_search_uses_its_budget(tmp_path):
    """One worker searching for 20 s: the last trial gets what no further trial could use."""
    budget, out = 20.0, tmp_path / "search"
    t0, wall, _ = _timed("search", "digits", "--out", out, "--time-budget", f"{budget:g}s", "--no-progress")
    _check(budget, wall, _last_write(out, t0), "search")
