"""The time budget's one clock: when it started, how much of it is left, and the shares of it sub-runs get.

A `--time-budget` covers the whole command: from the moment the user pressed enter (the process start,
read from /proc on Linux, so interpreter start-up and imports count) to the last file written and the
process's exit. From Python, `train()`/`fit()`/`ladder()`/`curve()`/`search()` start the clock when they
are called. One Deadline is made at launch and passed down; a conductor that runs several sub-runs (an
ensemble's members, a ladder's rungs, a curve's points, a search's trials) gives each a Deadline of its
own cut from the one it holds, so that time a sub-run does not use goes to the ones after it.

Usage:
    deadline = Deadline.at_launch(20.0)          # CLI: the clock started with the process
    deadline = Deadline(20.0)                    # API: starts now
    deadline.remaining()                         # seconds left (negative when over)
    member = deadline.share(1 / members_left, reserve=final_eval_seconds)   # a sub-run's own deadline
    body = deadline.until(reserve=4.0)           # the same end, less 4 s kept for what follows
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

MAX_PLAUSIBLE_AGE = 3600.0  # s; an older "process start" means the reading went wrong (or a long-lived host)
# The process's exit after the last file: the interpreter tears down torch's and numpy's heap (measured 0.3-1.0 s
# on a 2-core AVX2 machine after a Fashion-MNIST run, 0.3 s with the CLI's gc.freeze()); a CLI budget keeps it.
EXIT_SECONDS = 0.5


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


@dataclass(frozen=True)
class Deadline:
    """A budget of `seconds` whose clock started at `start` (a time.monotonic() value)."""

    seconds: float
    start: float = field(default_factory=time.monotonic)
    exit_seconds: float = 0.0  # kept at the end for the process's exit (the CLI's); not work time

    @classmethod
    def at_launch(cls, seconds: float) -> "Deadline":
        """The whole command's budget, counted from this process's start to its exit (the CLI)."""
        return cls(float(seconds), process_started(), EXIT_SECONDS)

    @property
    def work_seconds(self) -> float:
        """The budget less the exit's: what the run's work (start-up to the last file) may take."""
        return self.seconds - self.exit_seconds

    @property
    def end(self) -> float:
        return self.start + self.seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        """Seconds of work left (negative when over): to the end, less the exit's."""
        return self.end - self.exit_seconds - time.monotonic()

    def until(self, reserve: float = 0.0) -> "Deadline":
        """A sub-run's deadline starting now and ending `reserve` seconds before this one's work (never negative)."""
        now = time.monotonic()
        return Deadline(max(0.0, self.end - self.exit_seconds - reserve - now), now)

    def share(self, fraction: float, reserve: float = 0.0, minimum: float = 0.0) -> "Deadline":
        """A sub-run's deadline starting now: `fraction` of what is left after `reserve` seconds are kept, and
        never less than `minimum` seconds (a sub-run too short to do anything useful is not worth starting)."""
        now = time.monotonic()
        left = self.end - self.exit_seconds - reserve - now
        return Deadline(max(minimum, left * min(1.0, max(0.0, fraction))), now)
