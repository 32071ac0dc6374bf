"""`sortnet curve DATA`: validation accuracy against training-set size, and whether more data still pays.

Usage:
    sortnet curve photos/ [--fractions 10,25,50,100] [--seeds 2] [--model mlp] [--time-budget 10m]
"""
from __future__ import annotations

import argparse

from sortnet.cli.common import add_data_args, data_settings, launch_deadline


def register(sub) -> None:
    p = sub.add_parser("curve", help="learning curve: accuracy vs training-set size; does more data pay?",
                       description="Trains on stratified subsets of the training split (validation fixed), each "
                                   "size with several seeds; prints a table and one sentence from the slope of "
                                   "the last doubling. Writes curve.csv, curve.json, curve_runs.csv and curve.png.")
    add_data_args(p)
    p.add_argument("--fractions", default="10,25,50,100", help="percent (or fractions) of the training split "
                                                               "[default: 10,25,50,100]")
    p.add_argument("--seeds", type=int, default=2, help="runs per size [default: 2]")
    p.add_argument("--model", default="auto", help="model for every point [default: auto]")
    p.add_argument("--epochs", type=int, help="passes per run (default: the recipe's, or from --time-budget)")
    p.add_argument("--time-budget", help="for the whole curve, split evenly among its runs (e.g. 10m)")
    p.add_argument("--out", help="folder for the table and plot [default: runs/curve-<data name>]")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sortnet import curve
    from sortnet.compare.curve import curve_table

    result = curve(args.data, fractions=args.fractions, seeds=args.seeds, out=args.out,
                   deadline=launch_deadline(args.time_budget), model=args.model, epochs=args.epochs, time_budget=args.time_budget, **data_settings(args))
    if not args.progress:  # with progress the curve has printed its table already
        print(f"{curve_table(result['points'])}\n\n{result['verdict']}\nfiles in {result['out']}")
    return 0
