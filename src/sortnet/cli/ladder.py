"""`sortnet ladder DATA`: linear -> mlp -> CNN -> pretrained head -> fine-tuned, one split, one budget, one table.

Usage:
    sortnet ladder photos/ --time-budget 5m [--rungs linear,mlp,cnn] [--out DIR]
"""
from __future__ import annotations

import argparse

from sortnet.cli.common import add_data_args, data_settings, launch_deadline

RUNG_NAMES = ("linear", "mlp", "cnn", "pretrained-head", "finetune")  # = sortnet.compare.rungs.RUNG_NAMES


def register(sub) -> None:
    p = sub.add_parser("ladder", help="train linear -> mlp -> CNN -> pretrained rungs on one split, one table",
                       description="The model ladder: one split prepared once; each rung trains within its share of "
                                   "--time-budget (the whole command) and is scored on the same validation images. "
                                   "Writes ladder.csv, ladder.json, ladder.png and each rung's model file into --out.")
    add_data_args(p)
    p.add_argument("--time-budget", default="10m", help="for the whole command, e.g. 5m, 600s [default: 10m]")
    p.add_argument("--rungs", default=",".join(RUNG_NAMES), help=f"comma-separated subset of {', '.join(RUNG_NAMES)}")
    p.add_argument("--out", help="folder for the table, plot and model files [default: runs/ladder-<data name>]")
    p.add_argument("--eval-images", type=int, default=2000, help="validation images every rung is scored on "
                                                                 "(stratified) [default: 2000]")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sortnet import ladder
    from sortnet.compare.table import format_table

    result = ladder(args.data, time_budget=args.time_budget, rungs=args.rungs, out=args.out,
                    eval_images=args.eval_images, deadline=launch_deadline(args.time_budget), **data_settings(args))
    if not args.progress:  # with progress the ladder has printed its table already
        print(format_table(result["rows"]) + f"\nfiles in {result['out']}")
    return 0
