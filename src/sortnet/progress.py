"""Progress of long work, readable both live and in a log: one home for every bar sortnet shows.

On a terminal (or in a notebook) `progress(...)` is a tqdm bar redrawn in place. When its output goes to a file
or a pipe (a script, CI, `sortnet train ... > log 2>&1`) redrawing would write hundreds of carriage-return
updates into the log, so it is a `LogProgress` instead: one plain line every LOG_SECONDS (~10 s) while the work
runs and one closing line when it took that long, e.g.

    decoding: 3,210/10,000 img (32%), 321 img/s, 10s so far, ~21s left
    decoding: 10,000/10,000 img (100%), 238 img/s, done in 42s

Work that ends within LOG_SECONDS prints nothing. Lines that must stay (epoch results, trial results) go
through `write_line`, which does not break a live bar. Both kinds of progress take the same calls (the tqdm
subset sortnet uses): update(n), set_postfix(**values), set_postfix_str(text), close(), n, total, iteration,
and use as a context manager.

Usage:
    with progress(total=len(paths), desc="decoding", unit="img", enabled=show) as bar:
        for path in paths:
            ...
            bar.update(1)
    for chunk in progress(chunks, desc="report: predictions", unit="chunk", enabled=show): ...
    write_line("epoch 1/5  loss 0.41 ...")
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Iterable, TextIO

from tqdm.auto import tqdm

LOG_SECONDS = 10.0  # seconds between two plain progress lines in a log


def interactive(stream: TextIO | None = None) -> bool:
    """True when `stream` (default stderr, where bars go) is a terminal or a notebook shows it live."""
    stream = stream if stream is not None else sys.stderr
    if "ipykernel" in sys.modules:  # Jupyter: tqdm.auto draws a widget, no carriage returns in any log
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, initial: float = 0, unit_scale: bool = False, file: TextIO | None = None,
             **bar_options):
    """A tqdm bar on a terminal, else a LogProgress; bar_options (leave, dynamic_ncols, ...) are tqdm's."""
    if enabled and interactive(file):
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, unit_scale=unit_scale,
                    file=file, **bar_options)
    return LogProgress(iterable, total=total, desc=desc, unit=unit, enabled=enabled, initial=initial,
                       unit_scale=unit_scale, file=file)


def write_line(line: str) -> None:
    """Print a line that stays (on stdout), above any live bar."""
    tqdm.write(line)


class LogProgress:
    """Plain progress lines for logs: at most one per `interval` seconds, and one at the end of long work."""

    def __init__(self, iterable: Iterable | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", enabled: bool = True, initial: float = 0, unit_scale: bool = False,
                 file: TextIO | None = None, interval: float = LOG_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.enabled, self.unit_scale, self.file, self.interval, self.clock = enabled, unit_scale, file, interval, clock
        self.n = self.initial = initial
        self.postfix, self.lines, self.closed = "", 0, False
        self.started = self.last = clock()

    # ---- the tqdm calls sortnet uses ----
    def __iter__(self):
        for item in self.iterable if self.iterable is not None else ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        finished = self.total is not None and self.n >= self.total  # close() writes the last line
        if self.enabled and not finished and self.clock() - self.last >= self.interval:
            self._emit(final=False)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **values) -> None:
        values = {**(ordered_dict or {}), **values}
        self.postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = str(text)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.enabled and self.lines:  # long work ends with a line; short work leaves no trace in the log
            self._emit(final=True)

    # ---- the line ----
    def line(self, final: bool = False) -> str:
        elapsed = max(self.clock() - self.started, 0.0)
        sep = "" if self.unit_scale else " "  # "12.3M/51.0MB" as tqdm writes bytes; "3,210/10,000 img"
        head = f"{self.desc}: {self._number(self.n)}"
        if self.total:
            head += f"/{self._number(self.total)}{sep}{self.unit} ({100.0 * self.n / self.total:.0f}%)"
        else:
            head += f"{sep}{self.unit}"
        parts, done_here = [head], self.n - self.initial
        if elapsed > 0 and done_here > 0:
            parts.append(f"{self._number(done_here / elapsed)}{sep}{self.unit}/s")
        if final:
            parts.append(f"done in {_seconds(elapsed)}")
        else:
            parts.append(f"{_seconds(elapsed)} so far")
            if self.total and done_here > 0 and self.n < self.total:
                parts.append(f"~{_seconds((self.total - self.n) * elapsed / done_here)} left")
        text = ", ".join(parts)
        return f"{text}; {self.postfix}" if self.postfix else text

    def _emit(self, final: bool) -> None:
        stream = self.file if self.file is not None else sys.stderr
        stream.write(self.line(final) + "\n")
        stream.flush()
        self.lines += 1
        self.last = self.clock()

    def _number(self, x: float) -> str:
        """3,210 / 0.4 / 12.3M (unit_scale: SI prefixes, as tqdm)."""
        if self.unit_scale:
            return tqdm.format_sizeof(x)
        return f"{x:,.0f}" if x >= 10 or float(x).is_integer() else f"{x:.1f}"


def _seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f}s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
