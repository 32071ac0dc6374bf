"""Run-folder owners for the other verbs (issue 18, case 2): `ladder` and `curve` own their --out folder for
their whole length (a second verb into it refused with one line, exit 2), and release it after success, an
error and Ctrl-C; `search` workers hold it shared, so workers of one study run together while an owned folder
refuses them (and a running worker's folder refuses the others)."""
from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import sortnet
from clirun import one_line_error, popen_cli, run_cli_bounded
from conftest import make_class_folder
from sortnet.config import ConfigError
from sortnet.runfolder.lock import LOCK_FILE, RunLock, RunLockError, lock_holder, study_section


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    return make_class_folder(tmp_path, classes=3, per_class=12, size=12, mode="L")


def wait_for_owner(out, proc, timeout: float = 120) -> str:
    """The pid text in out's lock once proc holds it (fails when proc ends first)."""
    deadline = time.monotonic() + timeout
    while (holder := lock_holder(out)) is None:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the first command never took its folder"
        time.sleep(0.05)
    return holder


def assert_free(out) -> None:
    assert lock_holder(out) is None
    RunLock(out).acquire().release()  # nobody holds it: an exclusive lock is granted at once


@pytest.mark.timeout(300)
def test_second_verb_into_a_running_curves_folder_is_refused_and_ctrl_c_releases_it(data, tmp_path):
    out = tmp_path / "runs" / "shared-out"
    first = popen_cli("curve", data, "--out", out, "--model", "mlp", "--epochs", "100000", "--time-budget", "120s",
                      "--fractions", "50,100", "--seeds", "1", "--no-progress")
    try:
        holder = wait_for_owner(out, first)
        assert holder == str(first.pid)
        second = [("curve", data, "--out", out, "--model", "linear", "--epochs", "1", "--no-progress"),
                  ("ladder", data, "--out", out, "--time-budget", "5s", "--rungs", "linear", "--no-progress"),
                  ("search", data, "--out", out, "--trials", "1", "--max-epochs", "1", "--no-progress")]
        with ThreadPoolExecutor(len(second)) as pool:  # all at once: the first is still running meanwhile
            refused = list(pool.map(lambda args: run_cli_bounded(*args, timeout=120), second))
        assert first.poll() is None, "the first curve ended before the others were refused"
        for proc in refused:
            one_line_error(proc, "in use by another sortnet run", f"pid {first.pid}")
        assert not (out / "study.journal").exists() and not (out / "ladder.csv").exists()
    finally:
        first.send_signal(signal.SIGINT)  # Ctrl-C
        log, _ = first.communicate(timeout=120)
    assert first.returncode == 130 and "Traceback" not in log, log
    if out.exists():
        assert_free(out)
    else:  # stopped before its first point was written: the folder it made is gone
        assert not (tmp_path / "runs").exists()


def test_curve_and_ladder_release_the_folder_after_success(data, tmp_path):
    for verb, kwargs in ((sortnet.curve, dict(fractions=(0.5, 1.0), seeds=1, model="linear", epochs=1)),
                         (sortnet.ladder, dict(time_budget="6s", rungs="linear"))):
        out = tmp_path / verb.__name__
        verb(str(data), out=out, progress=False, **kwargs)
        assert (out / f"{verb.__name__}.csv").is_file() and (out / LOCK_FILE).is_file()
        assert_free(out)
        with pytest.raises(ConfigError, match="already holds other files"):  # finished: not in use, not empty
            sortnet.curve(str(data), out=out, progress=False, seeds=1, model="linear", epochs=1)


def test_curve_and_ladder_release_the_folder_after_an_error(data, tmp_path):
    for verb, kwargs in ((sortnet.curve, dict(seeds=1, model="linear", epochs=1)),
                         (sortnet.ladder, dict(time_budget="6s", rungs="linear"))):
        out = tmp_path / "made" / verb.__name__
        with pytest.raises(ConfigError, match="validation split"):  # raised while the folder is owned
            verb(str(data), out=out, progress=False, val_fraction=0, **kwargs)
        assert not (tmp_path / "made").exists()  # nothing but its lock was in it: the folders it made are gone
        kept = tmp_path / f"kept-{verb.__name__}"
        kept.mkdir()
        with pytest.raises(ConfigError, match="validation split"):
            verb(str(data), out=kept, progress=False, val_fraction=0, **kwargs)
        assert kept.is_dir() and not any(kept.iterdir())  # the user's empty folder stays, without a lock file
        assert_free(kept)


def test_search_workers_share_a_folder_that_owners_refuse(data, tmp_path):
    out = tmp_path / "search"
    out.mkdir()
    with RunLock(out, shared=True):  # a running worker of a study
        RunLock(out, shared=True).acquire().release()  # a second worker of the same study joins
        with pytest.raises(RunLockError, match="in use by another sortnet run"):
            RunLock(out).acquire()
        with pytest.raises(RunLockError, match="in use by another sortnet run"):
            sortnet.curve(str(data), out=out, progress=False, seeds=1, model="linear", epochs=1)
    pytest.importorskip("optuna")
    with RunLock(out):  # a ladder, curve or train owns the folder
        with pytest.raises(RunLockError, match="in use by another sortnet run"):
            sortnet.search(str(data), out=out, trials=1, max_epochs=1, progress=False)
    assert not (out / "study.journal").exists()
    assert_free(out)


def test_workers_open_a_study_one_at_a_time(tmp_path):
    """study_section: a second worker waits while the first defines the study (two new searches with other
    settings then cannot both define it: the second sees the first's settings and is refused)."""
    import threading

    entered = []

    def second() -> None:
        with study_section(tmp_path):
            entered.append(time.monotonic())

    with study_section(tmp_path):
        worker = threading.Thread(target=second)
        worker.start()
        time.sleep(0.3)
        assert not entered
        released = time.monotonic()
    worker.join(10)
    assert entered and entered[0] >= released
