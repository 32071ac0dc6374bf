"""Entry point of the `sortnet` command: builds the parser from every verb module and runs the chosen one.

User errors (sortnet.errors.SortnetError, FileNotFoundError) are printed as one line without a
traceback (exit status 2); Ctrl-C exits with 130, SIGTERM (handled as Ctrl-C: the same clean-up) with 143.

Usage:
    sys.exit(main())                    # the console script (pyproject: sortnet = "sortnet.cli:main")
    main(["predict", "photos.safetensors", "img.jpg", "--json"])
"""
from __future__ import annotations

import argparse
import gc
import sys

from sortnet.argtypes import OneLineParser
from sortnet.cli import (check, curve, datasets, ensemble, evaluate, export, ladder, models, predict, report, search,
                         serve, studio, train)
from sortnet.errors import USER_ERRORS
from sortnet.omp import prefer_passive_waiting
from sortnet.stopsignal import exit_code, terminate_as_interrupt
from sortnet.textsafe import terminal_safe
from sortnet.version import __version__

# Order = order in `sortnet --help`. A new verb: a module with register(sub) and run(args), listed here.
VERBS = (train, search, check, evaluate, report, predict, export, serve, studio, ladder, curve, ensemble, models,
         datasets)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="sortnet", description="Train, evaluate and use image classifiers.")
    parser.add_argument("--version", action="version", version=f"sortnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in VERBS:
        verb.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    prefer_passive_waiting()  # before torch loads: sleeping, not spinning, OpenMP threads (sortnet/omp.py)
    args = build_parser().parse_args(argv)
    try:
        with terminate_as_interrupt():
            return args.func(args)
    except USER_ERRORS as e:
        print(f"sortnet {args.command}: error: {terminal_safe(e)}", file=sys.stderr)  # names come from disk
        return 2
    except KeyboardInterrupt as e:
        print(f"\nsortnet {args.command}: interrupted. {e}", file=sys.stderr)
        return exit_code(e)
    finally:
        if argv is None:  # the process's own command: its exit is part of a --time-budget, and the interpreter's
            gc.freeze()   # teardown then skips collecting torch's heap (0.7 -> 0.3 s on 2 cores; training/clock.py)


if __name__ == "__main__":
    sys.exit(main())
