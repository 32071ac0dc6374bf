"""`sortnet check DATA`: data problems of a folder or label CSV (never modifies it); exit 1 only when fatal.
With --labels: the images whose label is probably wrong (still read only); --move-suspects / --undo-moves
are the explicit actions that move files between class folders (logged in DATA/.sortnet-moves.jsonl).

Usage:
    sortnet check photos/ [--json]
    sortnet check photos/ --labels [--out photos-labels/]
    sortnet check photos/ --move-suspects photos-labels/suspects.csv --top 10
    sortnet check photos/ --undo-moves
"""
from __future__ import annotations

import argparse
import sys

from sortnet.cli.train import TRAIN_HELP
from sortnet.jsonsafe import dumps
from sortnet.textsafe import terminal_safe

LABELS_HELP = ("find images whose label is probably wrong: out-of-fold predictions (k-fold; photos: the pretrained "
               "backbone's cached features + a linear head per fold, seconds; small images: k short CNN runs "
               "within --time-budget) + confident learning. Writes OUT/suspects.csv (path, given, suggested, "
               "score; most likely wrong first), OUT/ranking.csv (every image) and OUT/label_errors.json, prints "
               "the top suspects and the estimated number of wrong labels (or, below 80%% out-of-fold accuracy, "
               "that the estimate is unreliable). Changes nothing in DATA")


def register(sub) -> None:
    p = sub.add_parser("check", help="check a data folder or label CSV (never modifies it); --labels: wrong labels",
                       description="Per-class counts, unreadable files with reasons, tiny/odd images, hidden and "
                                   "stray files, exact and near-duplicates (within a class, across classes, across "
                                   "train/val/test). Exit status 1 only for fatal problems (no classes, one class, "
                                   "a class with no readable image). Results are cached per file. --labels finds "
                                   "wrong labels; only --move-suspects and --undo-moves ever change the folder.")
    p.add_argument("data", help="image folder (DATA/<class>/*, or train/ val/ test/) or a label CSV (path,label[,group])")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--follow-links", action="store_true", help=TRAIN_HELP["follow_links"])
    what = p.add_mutually_exclusive_group()
    what.add_argument("--labels", action="store_true", help=LABELS_HELP)
    what.add_argument("--move-suspects", metavar="CSV",
                      help="move the top --top N images of a suspects.csv to their suggested class folder (within "
                           "the same split); never overwrites (a free name is chosen); each move is appended to "
                           "DATA/.sortnet-moves.jsonl; --undo-moves restores them")
    what.add_argument("--undo-moves", action="store_true",
                      help="move every logged, not yet undone move back (newest first); a file that changed since "
                           "or whose old name is taken again stays and is reported")
    g = p.add_argument_group("--labels options")
    g.add_argument("--out", help="folder for suspects.csv, ranking.csv, label_errors.json [default: a new folder "
                                 "beside DATA, DATA-labels; never inside DATA]")
    g.add_argument("--folds", type=int, default=5, help="k of the stratified k-fold [default: 5]")
    g.add_argument("--time-budget", help="small images: seconds (or 4m) for the k CNN runs together "
                                         "[default: 25 ms per image, 60 s..10 min]; photos need none")
    g.add_argument("--score", choices=["self_confidence", "normalized_margin"], default="self_confidence",
                   help="label-quality score the ranking uses [default: self_confidence]")
    g.add_argument("--model", default="auto", help="model for the out-of-fold predictions [default: auto, as train]")
    g.add_argument("--seed", type=int, default=0, help="fold and training seed [default: 0]")
    g.add_argument("--show", type=int, default=10, help="suspects printed [default: 10]")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda")
    g.add_argument("--top", type=int, help="with --move-suspects: how many suspects to move, from the top")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.labels:
        return _labels(args)
    if args.move_suspects:
        return _move(args)
    if args.undo_moves:
        return _undo(args)
    from sortnet.data.check import run_check
    from sortnet.data.check_report import format_report

    result = run_check(args.data, progress=not args.json and sys.stderr.isatty(), follow_links=args.follow_links)
    print(dumps(result.report, indent=2) if args.json else format_report(result.report))
    return 1 if result.fatal else 0  # warnings alone never fail: only data that cannot train does


def _labels(args: argparse.Namespace) -> int:
    from sortnet.labels.actions import label_check

    result, files = label_check(args.data, args.out, folds=args.folds, seed=args.seed, time_budget=args.time_budget,
                                score=args.score, model=args.model, device=args.device,
                                follow_links=args.follow_links, progress=not args.json and sys.stderr.isatty())
    if args.json:
        print(dumps({**result.summary(), "files": {k: str(v) for k, v in files.items()}}, indent=2))
        return 0
    oof = result.out_of_fold
    print(terminal_safe(f"{result.images} images, {oof['folds']}-fold out-of-fold predictions ({oof['path']}: "
                        f"{oof['model']}), accuracy {oof['accuracy']:.3f}, {result.seconds:.0f} s"))
    if result.estimate_reliable:
        print(f"estimated wrong labels: {result.estimated_errors} "
              f"({result.estimated_errors / max(1, result.images):.1%}); {len(result.suspects)} suspects")
    else:  # no confident number from weak models: the count mixes their mistakes with wrong labels
        print(f"{result.estimate_note}; {len(result.suspects)} suspects")
    for s in result.suspects[: args.show]:
        print(terminal_safe(f"  {s.rank:>4}  {s.score:.3f}  {s.path}  {s.given} -> {s.suggested}"))
    if len(result.suspects) > args.show:
        print(f"  ... and {len(result.suspects) - args.show} more")
    print(terminal_safe(f"wrote {files['suspects']} (every image ranked: {files['ranking'].name}); nothing in "
                        f"{args.data} changed. To move the top N: sortnet check {args.data} --move-suspects "
                        f"{files['suspects']} --top N"))
    return 0


def _move(args: argparse.Namespace) -> int:
    from sortnet.labels.actions import move_suspects

    report = move_suspects(args.data, args.move_suspects, args.top)
    for m in report.moved:
        print(terminal_safe(f"moved {m.src} -> {m.dst}"))
    for path, why in report.skipped:
        print(terminal_safe(f"skipped {path}: {why}"))
    print(f"{len(report.moved)} moved, {len(report.skipped)} skipped; logged in the folder's .sortnet-moves.jsonl "
          f"(undo: sortnet check DATA --undo-moves)")
    return 0


def _undo(args: argparse.Namespace) -> int:
    from sortnet.labels.actions import undo_all

    results = undo_all(args.data)
    for r in results:
        print(terminal_safe(f"restored {r.move.dst} -> {r.move.src}" if r.restored
                            else f"not restored {r.path}: {r.reason}"))
    restored = sum(r.restored for r in results)
    print(f"{restored} restored, {len(results) - restored} not restored" if results else "no moves to undo")
    return 0 if restored == len(results) else 1
