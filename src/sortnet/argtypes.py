"""Checked argument types for the `sortnet` command line: a bad number is a one-line error naming the range.

Usage:
    p.add_argument("--top-k", type=int_at_least(1), default=3)
    p.add_argument("--port", type=port_number, default=8000)
    p.add_argument("--timeout", type=positive_float, default=10.0)
"""
from __future__ import annotations

import argparse
import math

PORT_MIN, PORT_MAX = 1, 65535


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def int_at_least(low: int, high: int | None = None):
    """An argparse type: a whole number in [low, high] (high None = no upper bound)."""

    def parse(text: str) -> int:
        value = _int(text)
        if value < low or (high is not None and value > high):
            span = f">= {low}" if high is None else f"in {low}..{high}"
            raise argparse.ArgumentTypeError(f"must be a whole number {span}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


def port_number(text: str) -> int:
    """A TCP port, 1..65535."""
    value = _int(text)
    if not PORT_MIN <= value <= PORT_MAX:
        raise argparse.ArgumentTypeError(f"port must be in {PORT_MIN}..{PORT_MAX}, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds, megabytes)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors ("sortnet serve: error: argument --port: ...") instead of a usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
