"""The unknown-threshold options shared by predict, serve and evaluate (sortnet/unknown/threshold.py).

Usage:
    add_unknown_args(p); options = unknown_options(args)     # {"unknown_accept": ..., "unknown_threshold": ...}
"""
from __future__ import annotations

import argparse
import math


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def accept_share(text: str) -> float:
    """A share of known images, 0.5..1."""
    value = _number(text)
    if not 0.5 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a share in 0.5..1 (e.g. 0.95), got {text}")
    return value


def add_unknown_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--unknown-accept", type=accept_share, metavar="SHARE",
                   help="answer 'unknown (closest: X)' for images less like the known classes than all but this "
                        "share of the validation images, 0.5..1 (default: the model file's, set in training: 0.95)")
    g.add_argument("--unknown-threshold", type=_number, metavar="SCORE",
                   help="answer 'unknown' above this unknown_score instead (the model file's threshold is in "
                        "its report, section 8, and GET /model of `sortnet serve`; each image's score is in --json)")


def unknown_options(args: argparse.Namespace) -> dict:
    return {"unknown_accept": args.unknown_accept, "unknown_threshold": args.unknown_threshold}
