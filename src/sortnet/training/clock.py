"""When a time budget's clock started, and how much of it is left.

A `--time-budget` covers the whole command: from the moment the user pressed enter (the process start,
read from /proc on Linux, so interpreter start-up and imports count) to the model file being written.
From Python, `train()`/`fit()` start the clock when they are called.

Usage:
    deadline = Deadline(seconds=20.0, start=process_started())   # CLI
    deadline = Deadline(seconds=20.0)                             # API: starts now
    deadline.remaining()        # seconds left (negative when over)
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

MAX_PLAUSIBLE_AGE = 3600.0  # s; an older "process start" means the reading went wrong (or a long-lived host)


def process_age() -> float | None:
    """Seconds since this process was started (Linux /proc), None where that cannot be read."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            stat = f.read()
        # field 22 (starttime, clock ticks after boot); fields after the ")" of the command name start at 3
        start_ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return age if 0.0 <= age < MAX_PLAUSIBLE_AGE else None


def process_started() -> float:
    """time.monotonic() value of this process's start (now, where the start cannot be read)."""
    age = process_age()
    return time.monotonic() - (age or 0.0)


@dataclass
class Deadline:
    """A budget of `seconds` whose clock started at `start` (a time.monotonic() value)."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    @property
    def end(self) -> float:
        return self.start + self.seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        return self.end - time.monotonic()
