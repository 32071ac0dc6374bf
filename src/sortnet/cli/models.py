"""`sortnet models`: the registered model names (any layer spec string works too).

Usage:
    sortnet models [--json]
"""
from __future__ import annotations

import argparse

from sortnet.jsonsafe import dumps


def register(sub) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sortnet import list_models

    rows = list_models()
    if args.json:
        print(dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['description']}")
    print("\nor any layer spec, e.g. --model 'conv32 conv32 maxpool drop0.25 conv64 maxpool flatten dense128 drop0.5'")
    print("or any timm model when timm is installed, e.g. --model timm:convnext_nano (its ImageNet weights by default)")
    return 0
