"""`sortnet datasets`: list built-in datasets, --fetch one onto this machine, or --export some of its images.

Usage:
    sortnet datasets [--json]
    sortnet datasets --fetch fashion-mnist           # present? else apt (Debian package), else download, else what to do
    sortnet datasets --export fashion-mnist --split test --limit 8 --out demo-images
"""
from __future__ import annotations

import argparse
import sys

from sortnet.argtypes import int_at_least
from sortnet.jsonsafe import dumps


def register(sub) -> None:
    p = sub.add_parser("datasets", help="list built-in datasets; --fetch or --export one",
                       description="Built-in datasets and whether their files are present. --fetch NAME gets the "
                                   "files once: nothing to do when present; else Debian's package when there is one "
                                   "and apt-get may run without a prompt (root or passwordless sudo); else the "
                                   "official download; else it says which files to put where.")
    p.add_argument("--data-root", help="where built-in datasets live")
    p.add_argument("--json", action="store_true")
    p.add_argument("--fetch", metavar="NAME", help="make dataset NAME available on this machine (see above)")
    p.add_argument("--apt", action=argparse.BooleanOptionalAction, default=True,
                   help="with --fetch: may install the Debian package with apt-get [default: yes]")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                   help="with --fetch: may download the official files [default: yes]")
    p.add_argument("--export", metavar="NAME", help="write images of dataset NAME as PNG files into --out/<class>/")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to --export")
    p.add_argument("--limit", type=int_at_least(1), default=20, help="how many images to --export [default: 20]")
    p.add_argument("--out", default="sortnet-images", help="folder for --export [default: sortnet-images]")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.fetch:
        from sortnet.data.fetch import fetch_dataset

        folder = fetch_dataset(args.fetch, args.data_root, download=args.download, allow_apt=args.apt,
                               say=lambda msg: print(msg, file=sys.stderr, flush=True))
        print(f"{args.fetch}: {folder or 'bundled with scikit-learn'}")
        return 0
    if args.export:
        from sortnet.data.export_images import export_images

        written = export_images(args.export, args.out, split=args.split, limit=args.limit, data_root=args.data_root)
        print(f"wrote {len(written)} {args.split} images of {args.export} to {args.out}/<class>/")
        return 0
    from sortnet import list_datasets

    rows = list_datasets(args.data_root)
    if args.json:
        print(dumps(rows, indent=2))
        return 0
    for r in rows:
        state = "present" if r["present"] else "missing (sortnet datasets --fetch NAME, or downloaded on first use)"
        print(f"{r['name']:<14} {r['description']:<48} {state}  {r.get('location', '')}")
    return 0
