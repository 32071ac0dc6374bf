"""Run folders (issue 18, cases 2 and 4): a run owns its folder for its whole length (a second run into it
is refused with one line; a lock left by a dead process does not block); SIGTERM before the first checkpoint
cleans up as Ctrl-C does; after a clean-up nothing suggests --resume; a killed writer's temporary file is
removed when the run is resumed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from clirun import one_line_error, popen_cli, run_cli_bounded
from conftest import make_class_folder
from sortnet.cli.main import main
from sortnet.stopsignal import Terminated, terminate_as_interrupt
from sortnet.training.callbacks import Callback
from sortnet.runs.train import train
from sortnet.runfolder.lock import LOCK_FILE, RunLock, RunLockError

FAST = dict(epochs=1, model="linear", progress=False, check=False, report=False)


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    return make_class_folder(tmp_path, classes=3, per_class=10)


class StopAt(Callback):
    """Stops the run at the first batch of `epoch` (0-based): by SIGTERM to this process, or by Ctrl-C."""

    def __init__(self, epoch: int, how: str) -> None:
        self.epoch, self.how, self.current = epoch, how, 0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.current = epoch

    def on_batch_end(self, batch: int, logs=None) -> None:
        if self.current >= self.epoch:
            if self.how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises during the sleep
            raise KeyboardInterrupt


def test_second_run_into_an_owned_folder_is_refused(data, tmp_path):
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    with RunLock(run):  # another run holds the folder (as a live `sortnet train` does for its whole length)
        one_line_error(run_cli_bounded("train", data, "--out", run, "--no-check", "--no-progress"),
                        "in use by another sortnet run", f"pid {os.getpid()}")
        with pytest.raises(RunLockError, match="in use"):
            train(str(data), out=str(run), **FAST)
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # the refused runs wrote nothing
    clf = train(str(data), out=str(run), **FAST)  # the lock of a finished (dead) owner does not block
    assert (clf.run_dir / "model.safetensors").is_file()
    with RunLock(run):
        one_line_error(run_cli_bounded("train", "--resume", run, "--no-progress"), "in use by another")


def test_a_lock_file_left_by_a_killed_process_does_not_block(data, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from sortnet.runfolder.lock import RunLock;"
                               f"RunLock({str(run)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    run.mkdir()
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockError, match=f"pid {holder.pid}"):
            RunLock(run).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / LOCK_FILE).exists()
    assert (train(str(data), out=str(run), **FAST).run_dir / "model.safetensors").is_file()


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_stop_before_first_checkpoint_leaves_nothing_and_no_resume_hint(data, tmp_path, how):
    run = tmp_path / "runs" / "stopped"
    with terminate_as_interrupt(), pytest.raises(KeyboardInterrupt) as info:
        train(str(data), out=str(run), callbacks=[StopAt(0, how)], **FAST)
    assert isinstance(info.value, Terminated) == (how == "sigterm")
    assert "nothing was kept" in str(info.value) and "--resume" not in str(info.value)
    assert not run.exists() and not (tmp_path / "runs").exists()
    assert (train(str(data), out=str(run), **FAST).run_dir / "model.safetensors").is_file()  # same --out works


@pytest.mark.timeout(180)
def test_sigterm_from_outside_before_first_checkpoint(tmp_path):
    data = make_class_folder(tmp_path, classes=3, per_class=100, size=32)
    run = tmp_path / "runs" / "killed"
    proc = popen_cli("train", data, "--out", run, "--model", "mlp", "--batch-size", "1", "--epochs", "3",
                     "--no-check", "--no-report", "--no-progress")
    deadline = time.monotonic() + 120
    while not (run / "run.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    checkpointed = (run / "checkpoint.pt").exists()
    print("checkpointed before SIGTERM:", checkpointed)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in out, out
    if not checkpointed:  # the usual case: SIGTERM in the first epoch of 300 one-image steps
        assert not run.exists() and "nothing was kept" in out and "--resume" not in out


def test_resume_removes_a_killed_writers_temporary_file(data, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt, match="--resume"):  # stopped in epoch 2: checkpoint of epoch 1 kept
        train(str(data), out=str(run), callbacks=[StopAt(1, "ctrl-c")], **dict(FAST, epochs=2))
    stale = run / ".model.safetensors.k1ll3d.tmp"  # what a SIGKILL during the model file's write leaves
    stale.write_bytes(b"half a model")
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert not stale.exists() and (run / "model.safetensors").is_file()
    assert not list(run.glob(".*.tmp"))
