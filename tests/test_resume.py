"""Crash safety: SIGKILL mid-training then --resume equals an uninterrupted run; a kill during a
checkpoint save never leaves an unreadable checkpoint."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from clirun import popen_cli, run_cli
from conftest import make_class_folder
from sortnet.training.checkpoint import load_checkpoint

TRAIN_ARGS = ["--model", "cnn-small", "--epochs", "6", "--batch-size", "16", "--seed", "3", "--no-progress",
              "--img-size", "16"]


def _wait_for_epoch(run_dir: Path, epoch: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        ckpt = run_dir / "checkpoint.pt"
        if ckpt.exists():
            try:
                if load_checkpoint(ckpt)["epoch"] >= epoch:
                    return
            except Exception:
                pass  # being replaced right now; atomic rename means the next read is whole
        if proc.poll() is not None:
            raise AssertionError(f"training ended before epoch {epoch}:\n{proc.stdout.read()}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for a checkpoint")


@pytest.mark.timeout(600)
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    data = make_class_folder(tmp_path, classes=3, per_class=80, size=16)
    run_cli("train", data, "--out", tmp_path / "full", *TRAIN_ARGS)
    proc = popen_cli("train", data, "--out", tmp_path / "killed", *TRAIN_ARGS)
    _wait_for_epoch(tmp_path / "killed", 2, proc)
    time.sleep(0.15)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "model.safetensors").exists(), "run finished before the kill"
    run_cli("train", "--resume", tmp_path / "killed", "--no-progress")
    full = load_file(str(tmp_path / "full" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "killed" / "model.safetensors"))
    assert full.keys() == resumed.keys()
    for k in full:
        assert torch.equal(full[k], resumed[k]), f"{k} differs after resume"


SAVER = textwrap.dedent("""
    import sys, torch
    from sortnet.training.checkpoint import save_checkpoint
    path = sys.argv[1]
    i = 0
    while True:
        i += 1
        save_checkpoint(path, {"version": i, "weights": torch.full((4_000_000,), float(i))})
""")


def test_kill_during_save_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    kills_mid_write = 0
    for attempt in range(4):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)])
        t0 = time.time()
        while time.time() - t0 < 60:  # wait until a temporary file is being written, after a first save
            if path.exists() and any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills_mid_write += any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
        state = load_checkpoint(path)  # must be a complete checkpoint
        assert torch.all(state["weights"] == float(state["version"]))
        for p in tmp_path.iterdir():
            if p.name.endswith(".tmp"):
                os.unlink(p)  # leftovers of a killed writer are harmless; clean for the next round
    assert kills_mid_write >= 1, "never managed to kill during a write"
