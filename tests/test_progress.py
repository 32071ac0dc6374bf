"""Progress for logs: a tqdm bar on a terminal, plain lines every ~10 s otherwise (sortnet/progress.py), and the
real CLI's output, captured (not a terminal), holds no carriage return and stays short.

Run: PYTHONPATH=src .venv/bin/pytest tests/test_progress.py -q
"""
from __future__ import annotations

import io
import os

from clirun import run_cli
from conftest import make_class_folder
from tqdm import tqdm

from sortnet.progress import LOG_SECONDS, LogProgress, interactive, progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_interval_and_one_at_the_end() -> None:
    clock, out = FakeClock(), io.StringIO()
    with LogProgress(total=1600, desc="decoding", unit="img", file=out, clock=clock) as bar:
        for i in range(1600):
            clock.now += 1 / 32  # 50 s in all (a power-of-two step: exact sums)
            bar.update(1)
            bar.set_postfix(loss="0.412")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 5  # at 10, 20, 30, 40 s, then the closing line at 50 s
    assert lines[0] == "decoding: 320/1,600 img (20%), 32 img/s, 10s so far, ~40s left; loss=0.412"
    assert lines[-1] == "decoding: 1,600/1,600 img (100%), 32 img/s, done in 50s; loss=0.412"


def test_short_work_leaves_no_line_and_disabled_prints_nothing() -> None:
    clock, out = FakeClock(), io.StringIO()
    for item in LogProgress(range(50), desc="resizing", unit="img", file=out, clock=clock):
        clock.now += 0.1  # 5 s: under LOG_SECONDS
    assert out.getvalue() == ""
    quiet = LogProgress(total=10, desc="x", enabled=False, file=out, clock=clock)
    for _ in range(10):
        clock.now += LOG_SECONDS
        quiet.update(1)
    quiet.close()
    assert out.getvalue() == ""


def test_iteration_counts_and_bytes_read_like_tqdm() -> None:
    clock, out = FakeClock(), io.StringIO()
    bar = LogProgress(total=51e6, desc="downloading f.gz", unit="B", unit_scale=True, file=out, clock=clock)
    for _ in range(51):
        clock.now += 1
        bar.update(1e6)
    bar.close()
    first = out.getvalue().splitlines()[0]
    assert first.startswith("downloading f.gz: 10.0M/51.0MB (20%), 1.00MB/s, 10s so far") and bar.n == 51e6
    items = list(LogProgress(["a", "b"], desc="x", file=out, clock=clock))
    assert items == ["a", "b"]


def test_terminal_gets_a_bar_and_a_pipe_gets_lines() -> None:
    assert isinstance(progress(total=3, desc="x", file=io.StringIO()), LogProgress)
    assert not interactive(io.StringIO())
    primary, secondary = os.openpty()
    with os.fdopen(secondary, "w") as tty:
        try:
            bar = progress(total=3, desc="x", file=tty, leave=False)
            assert isinstance(bar, tqdm) and interactive(tty)
            bar.close()
        finally:
            os.close(primary)


def test_cli_output_captured_is_a_readable_log(tmp_path) -> None:
    data = make_class_folder(tmp_path, classes=3, per_class=12, size=16)
    run = run_cli("train", data, "--epochs", "2", "--out", tmp_path / "run", "--no-report")
    log = run.stdout + run.stderr
    assert "\r" not in log, log
    lines = log.splitlines()
    assert len(lines) <= 30, log  # check, data, model, 2 epoch lines, done, model file (no bar redraws)
    assert sum(ln.startswith("epoch ") for ln in lines) == 2, log
