"""SIGTERM handled as Ctrl-C: raised as `Terminated` (a KeyboardInterrupt) where the process is, so every
clean-up that runs for Ctrl-C runs for `kill` too (a run stopped before its first checkpoint removes what it
wrote; the run-folder lock is released). The CLI exits 143 (128 + SIGTERM) instead of 130.

Usage:
    with terminate_as_interrupt():     # in the main thread, around the work; the old handler comes back after
        ...
    except KeyboardInterrupt as e: code = exit_code(e)
"""
from __future__ import annotations

import contextlib
import signal
import threading


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def _raise(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM during the clean-up ends the process
    raise Terminated("terminated (SIGTERM)")


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM raises Terminated inside the block (only the main thread may install it; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_code(error: KeyboardInterrupt) -> int:
    return 143 if isinstance(error, Terminated) else 130
