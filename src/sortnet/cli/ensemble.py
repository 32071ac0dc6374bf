"""`sortnet ensemble A.safetensors B.safetensors ... --out ens.safetensors`: one model file from several.

Usage:
    sortnet ensemble a.safetensors b.safetensors --out ens.safetensors [--weights val] [--evaluate DATA]
"""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("ensemble", help="combine model files of the same classes into one ensemble model file",
                       description="Averages the members' probabilities (optionally weighted by their recorded "
                                   "validation accuracy). Members may differ in architecture and input size: the "
                                   "ensemble takes the largest member's input and converts/resizes inside for the "
                                   "others. The result is a model file like any other (evaluate, predict, export, "
                                   "serve).")
    p.add_argument("models", nargs="+", help="member model files (.safetensors), same classes in the same order")
    p.add_argument("--out", required=True, help="the ensemble model file to write")
    p.add_argument("--weights", choices=["equal", "val"], default="equal",
                   help="equal, or each member's validation accuracy from its file [default: equal]")
    p.add_argument("--evaluate", metavar="DATA", help="then evaluate the ensemble on DATA (as `sortnet evaluate`)")
    p.add_argument("--data-root", help="where built-in datasets live")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sortnet.ensemble.build import make_ensemble

    info = make_ensemble(args.models, args.out, args.weights)
    weights = ", ".join(f"{w:.3f}" for w in info["weights"])
    print(f"wrote {info['path']}: ensemble of {len(info['members'])} (weights {weights}); {info['input_note']}")
    if args.evaluate:
        from sortnet import evaluate
        from sortnet.evaluation.report import format_report

        print(format_report(evaluate(info["path"], args.evaluate, data_root=args.data_root),
                            title=f"{info['path']} on {args.evaluate}"))
    return 0
