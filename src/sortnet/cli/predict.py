"""`sortnet predict MODEL PATHS...` (files and folders) or `--camera N` / `--video PATH` (live sorting).

Output: one line per image, or --json (a list of the one prediction shape, docs/CONTRACTS.md), or --csv;
with --camera/--video a status line per frame, or --emit jsonl (one prediction object per line).

Usage:
    sortnet predict runs/x/model.safetensors new.jpg folder/ --top-k 3 [--json | --csv]
    sortnet predict runs/x/model.safetensors --video belt.mp4 --emit jsonl
"""
from __future__ import annotations

import argparse
import csv
import sys

from sortnet.argtypes import int_at_least
from sortnet.cli.common import add_invert_arg
from sortnet.cli.train import TRAIN_HELP
from sortnet.cli.unknown_args import add_unknown_args, unknown_options
from sortnet.jsonsafe import dumps
from sortnet.textsafe import terminal_safe


def register(sub) -> None:
    p = sub.add_parser("predict", help="classify image files and folders, or camera/video frames")
    p.add_argument("model", help="model file (RUN_DIR/model.safetensors) or an ONNX export (.onnx)")
    p.add_argument("paths", nargs="*", help="image files and/or folders (searched recursively)")
    p.add_argument("--top-k", type=int_at_least(1), default=3,
                   help="how many classes to show per image (>= 1) [default: 3]")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="JSON output")
    out.add_argument("--csv", action="store_true", help="CSV output (csv-module quoting; on a terminal, control "
                                                       "characters in names are escaped as \\x1b, \\u202e)")
    add_invert_arg(p)
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto [default: cpu]")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True, help="test-time augmentation")
    p.add_argument("--runtime", choices=["auto", "torch", "onnx"], default="auto",
                   help="auto: onnxruntime on the CPU when installed (and for .onnx files), else torch")
    p.add_argument("--follow-links", action="store_true", help=TRAIN_HELP["follow_links"])
    add_unknown_args(p)
    p.add_argument("--camera", type=int, metavar="INDEX", help="classify frames of camera INDEX (0 = first) "
                                                              "until Ctrl-C; needs opencv-python-headless")
    p.add_argument("--video", metavar="PATH", help="classify the frames of a video file, or of a folder of "
                                                   "image files in sorted order (an image sequence)")
    p.add_argument("--emit", choices=["jsonl"], help="with --camera/--video: one JSON object per frame on stdout")
    p.add_argument("--max-frames", type=int_at_least(1), metavar="N",
                   help="with --camera/--video: stop after N frames")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = {"device": args.device, "invert": args.invert, "tta": args.tta, "runtime": args.runtime,
               **unknown_options(args)}
    if args.camera is not None or args.video:
        return _live(args, options)
    if not args.paths:
        raise SystemExit("sortnet predict: give image files/folders, or --camera INDEX / --video PATH")
    from sortnet import predict

    preds = predict(args.model, args.paths, top_k=args.top_k, follow_links=args.follow_links, **options)
    if not preds:
        print("no image files found in the given paths", file=sys.stderr)
        return 1
    if args.json:
        print(dumps([p.to_dict() for p in preds], indent=2))
    elif args.csv:
        shown = terminal_safe if sys.stdout.isatty() else str  # a file or pipe gets the names exactly
        w = csv.writer(sys.stdout)
        w.writerow(["path"] + [x for i in range(args.top_k) for x in (f"class{i + 1}", f"prob{i + 1}")] + ["error"])
        for p in preds:
            w.writerow([shown(p.path)] + [x for c, pr in p.top for x in (shown(c), f"{pr:.6f}")]
                       + [shown(p.error or "")])
    else:
        for p in preds:
            shown = p.error and f"error: {p.error}" or "  ".join(f"{c} {pr:.3f}" for c, pr in p.top)
            if p.unknown:  # the closest class stays visible: "unknown (closest: cat 0.412)"
                shown = f"unknown (closest: {shown})"
            print(f"{terminal_safe(p.path)}\t{terminal_safe(shown)}{'  (inverted)' if p.inverted else ''}")
    _count_not_read(preds)
    return 1 if all(p.error for p in preds) else 0


def _count_not_read(preds) -> None:
    """One line on stderr: how many entries have no prediction (each is listed above with its reason)."""
    errors = [p.error for p in preds if p.error]
    if errors:
        from collections import Counter

        top = ", ".join(f"{n} {terminal_safe(why)}" for why, n in Counter(errors).most_common(3))
        more = ", ..." if len(set(errors)) > 3 else ""
        print(f"{len(errors)} of {len(preds)} entries not classified, each listed with its reason ({top}{more})",
              file=sys.stderr)


def _live(args: argparse.Namespace, options: dict) -> int:
    from sortnet.infer.stream import StreamError, run_live

    if args.paths:
        raise StreamError("give image paths, or --camera/--video, not both")
    if args.camera is not None and args.video:
        raise StreamError("give --camera or --video, not both")
    source = args.camera if args.camera is not None else args.video
    return run_live(args.model, source, top_k=args.top_k, emit=args.emit, max_frames=args.max_frames, **options)
