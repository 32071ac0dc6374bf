"""The `sortnet search` verb: arguments -> `sortnet.search(...)`, or `--show STUDY` -> the leaderboard.

Usage:
    sortnet search digits --trials 30
    sortnet search fashion-mnist --time-budget 30m --objectives accuracy,latency
    sortnet search photos/ --trials 100 --storage postgresql://user@dbhost/sortnet --study photos   # on each machine
    sortnet search --show runs/digits-search
"""
from __future__ import annotations

import argparse

from sortnet.nas.config import SearchConfig

DESCRIPTION = """\
Evolve layer specs and training recipes with Optuna. Each trial draws a genome (conv widths, depth, pooling,
dropout, dense size; learning rate, weight decay, batch, augmentation, label smoothing, epochs, image size),
trains it with `sortnet.fit` on data prepared once per worker and image size, and scores it by validation
accuracy (and, with --objectives accuracy,latency, by its measured 1-image CPU latency: a Pareto front).
Samplers: NSGA-II, a genetic algorithm (default), or TPE. Single-objective studies prune trials whose
validation accuracy after an epoch is in the bottom quarter of earlier trials at that epoch (from epoch 2);
Optuna cannot prune multi-objective studies, so those trials always run to the end of their budget.
The study lives in RUN_DIR/study.journal and the same command continues it; with --storage
postgresql://... any number of workers on any machines run the same command against one study.
Writes RUN_DIR/leaderboard.csv|json, pareto.png, trials/trial-NNNN.safetensors and best.safetensors."""

HELP = {
    "trials": "stop once the study holds N finished (complete or pruned) trials, counting every worker's",
    "time_budget": "this worker searches for this long, e.g. 10m, 1h (no trial starts with less than a quarter of a "
                   "trial budget left)",
    "trial_budget": "time cap of one trial's training, e.g. 2m (default: time budget / 8 within 20 s..10 m; "
                    "else 2m)",
    "objectives": "accuracy (maximize val accuracy; trials can be pruned) | accuracy,latency (Pareto front of "
                  "val accuracy vs 1-image CPU latency; no pruning)",
    "sampler": "nsga2 (genetic algorithm) | tpe",
    "population": "NSGA-II generation size (TPE: random trials before modelling)",
    "prune": "prune bad single-objective trials early (--no-prune to run every trial to its end)",
    "storage": "Optuna storage URL shared by workers, e.g. postgresql://user:pw@host:5432/db or "
               "sqlite:///study.db (default: RUN_DIR/study.journal)",
    "study": "study name (default: the run folder's name)",
    "img_sizes": "candidate input sides, e.g. 14,28 (auto: the data's size and its half when >= 12 px)",
    "max_epochs": "the epochs gene ranges over N/8..N (log scale; default: the recipe's epochs for the data size)",
    "seed": "training seed of every trial (split, init, batch order)",
    "device": "auto | cpu | cuda",
    "progress": "progress bar and one line per trial",
    "val_fraction": "fraction of each class held out for validation (the search's score)",
    "channels": "1 (grey) or 3 (colour) (default: from the images)",
    "data_root": "where built-in datasets are read/downloaded",
    "download": "download missing built-in datasets",
    "max_memory": "decoded images allowed in RAM before streaming from disk (auto, 2G, ...)",
    "check": "check the data first (cached)",
}

METAVARS = {"trials": "N", "time_budget": "DURATION", "trial_budget": "DURATION", "storage": "URL",
            "study": "NAME", "img_sizes": "PX,PX", "max_epochs": "N", "population": "N", "val_fraction": "F"}


def register(sub) -> None:
    p = sub.add_parser("search", help="evolve network architectures and recipes with Optuna (NSGA-II / TPE)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="?", help="image folder or built-in dataset name (as for train)")
    p.add_argument("--out", help="run folder of the study (default runs/<data name>-search)")
    p.add_argument("--show", metavar="STUDY", help="print the leaderboard of a study: its run folder, or its "
                                                   "name with --storage")
    p.add_argument("--top", type=int, default=15, help="rows of the leaderboard to print [default: 15]")
    for name, default in SearchConfig().to_dict().items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default, help=HELP[name])
            continue
        kind = {"trials": int, "population": int, "max_epochs": int, "seed": int, "channels": int,
                "val_fraction": float}.get(name, str)
        shown = "" if default is None else f" [default: {default}]"
        p.add_argument(flag, dest=name, type=kind, default=default, metavar=METAVARS.get(name, name.upper()),
                       help=HELP[name] + shown)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sortnet.cli.common import launch_deadline
    from sortnet.nas.run import search, show

    if args.show:
        show(args.show, storage=args.storage, study=args.study, limit=args.top)
        return 0
    if not args.data:
        raise SystemExit("sortnet search: give DATA (a folder or built-in dataset), or --show STUDY")
    settings = {name: getattr(args, name) for name in SearchConfig().to_dict()}
    search(args.data, out=args.out, deadline=launch_deadline(args.time_budget), **settings)
    return 0
