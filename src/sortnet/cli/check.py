"""`sortnet check DATA`: data problems of a folder or label CSV (never modifies it); exit 1 only when fatal.

Usage:
    sortnet check photos/ [--json]
"""
from __future__ import annotations

import argparse
import sys

from sortnet.cli.train import TRAIN_HELP
from sortnet.jsonsafe import dumps


def register(sub) -> None:
    p = sub.add_parser("check", help="check a data folder or label CSV (never modifies it)",
                       description="Per-class counts, unreadable files with reasons, tiny/odd images, hidden and "
                                   "stray files, exact and near-duplicates (within a class, across classes, across "
                                   "train/val/test). Exit status 1 only for fatal problems (no classes, one class, "
                                   "a class with no readable image). Results are cached per file.")
    p.add_argument("data", help="image folder (DATA/<class>/*, or train/ val/ test/) or a label CSV (path,label[,group])")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--follow-links", action="store_true", help=TRAIN_HELP["follow_links"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sortnet.data.check import run_check
    from sortnet.data.check_report import format_report

    result = run_check(args.data, progress=not args.json and sys.stderr.isatty(), follow_links=args.follow_links)
    print(dumps(result.report, indent=2) if args.json else format_report(result.report))
    return 1 if result.fatal else 0  # warnings alone never fail: only data that cannot train does
