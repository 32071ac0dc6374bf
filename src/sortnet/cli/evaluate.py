"""`sortnet evaluate MODEL DATA`: accuracy, top-5, per-class precision/recall/F1, confusion matrix.

Usage:
    sortnet evaluate runs/photos/model.safetensors photos/ [--json]
"""
from __future__ import annotations

import argparse

from sortnet.cli.common import add_invert_arg
from sortnet.cli.train import TRAIN_HELP
from sortnet.cli.unknown_args import add_unknown_args, unknown_options
from sortnet.jsonsafe import dumps
from sortnet.textsafe import terminal_safe


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics of a model on a folder or built-in test split")
    p.add_argument("model", help="model file (RUN_DIR/model.safetensors)")
    p.add_argument("data", help="folder (uses test/ if present, else every image) or built-in name (test split)")
    p.add_argument("--json", action="store_true", help="print all metrics as JSON")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True, help="test-time augmentation")
    add_invert_arg(p)
    p.add_argument("--data-root", help="where built-in datasets live")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--follow-links", action="store_true", help=TRAIN_HELP["follow_links"])
    add_unknown_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sortnet import evaluate
    from sortnet.evaluation.report import format_report

    m = evaluate(args.model, args.data, device=args.device, tta=args.tta, invert=args.invert, data_root=args.data_root,
                 download=args.download, progress=not args.json, follow_links=args.follow_links,
                 **unknown_options(args))
    if args.json:
        print(dumps(m, indent=2))
        return 0
    print(format_report(m, title=f"{args.model} on {args.data}"))
    if m.get("unknown_share") is not None:
        print(f"answered unknown: {m['unknown_share']:.1%} of the images (unknown_score > "
              f"{m['unknown_threshold']:.4g}; accuracy counts their closest class)")
    for s in m["skipped_files"]:
        print(terminal_safe(f"skipped {s['path']}: {s['reason']}"))
    return 0
