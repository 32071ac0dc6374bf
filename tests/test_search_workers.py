"""Several `sortnet search` workers on one study: two processes on one journal file (the run folder's
default storage), and two "machines" (separate run folders) on one real PostgreSQL server.

Checks: both workers ran trials, every trial is recorded once (unique numbers; each trial claimed by
exactly one worker's output, the union is the study), the study stops at --trials finished trials
(plus at most one trial per extra worker, finished while another counted the last), and the leaderboard
(`sortnet search --show`) lists exactly the study's trials with the values the storage holds.
"""
from __future__ import annotations

import re

import pytest
from clirun import popen_cli, run_cli
from conftest import make_class_folder

optuna = pytest.importorskip("optuna")

from pgserver import Unavailable, postgres_server  # noqa: E402

TRIALS = 6
ARGS = ["--trials", str(TRIALS), "--max-epochs", "1", "--img-sizes", "8", "--no-check", "--population", "2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_class_folder(tmp_path_factory.mktemp("workers"), classes=3, per_class=10, size=8)


def run_two_workers(data, outs, extra):
    procs = [popen_cli("search", data, "--out", out, *ARGS, *extra) for out in outs]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log
    return [{int(n) for n in re.findall(r"^trial (\d+):", log, re.M)} for log in logs]


def check_study(study, claimed, shown: str) -> None:
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers)) == len(study.trials)
    assert all(claimed), f"a worker ran no trial: {claimed}"
    assert not (claimed[0] & claimed[1]) and claimed[0] | claimed[1] == set(numbers)  # each trial once
    assert TRIALS <= len(done) <= TRIALS + 1
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2
    assert f"{len(numbers)} trials" in shown
    for t in done:  # the leaderboard shows what the storage holds
        acc = t.user_attrs["val_accuracy"]
        assert re.search(rf"^\s*{t.number}\*?\s+{t.state.name.lower()}\s+{acc:.4f}", shown, re.M), t.number


@pytest.mark.slow  # two worker processes: ~40 s on an idle 2-core machine, 1.5-2.5 min when shared
def test_two_workers_share_the_run_folder_journal(data, tmp_path):
    out = tmp_path / "search"
    claimed = run_two_workers(data, [out, out], [])
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    study = optuna.load_study(study_name="search", storage=storage)
    check_study(study, claimed, run_cli("search", "--show", out, "--top", "20").stdout)


@pytest.mark.slow  # a PostgreSQL server + two worker processes: ~45 s idle, 2.5 min on the shared 2 cores
def test_two_machines_share_one_postgresql_study(data, tmp_path):
    try:
        server = postgres_server()
        url = server.__enter__()
    except Unavailable as e:
        pytest.skip(str(e))
    try:
        claimed = run_two_workers(data, [tmp_path / "a", tmp_path / "b"], ["--storage", url, "--study", "shared"])
        study = optuna.load_study(study_name="shared", storage=url)
        check_study(study, claimed, run_cli("search", "--show", "shared", "--storage", url, "--top", "20").stdout)
        for t in study.trials:  # each machine keeps its own trials' model files
            if t.state == optuna.trial.TrialState.COMPLETE:
                assert t.user_attrs["model_file"].startswith(str(tmp_path / ("a" if t.number in claimed[0] else "b")))
    finally:
        server.__exit__(None, None, None)
