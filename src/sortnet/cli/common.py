"""Arguments shared by several verbs (data settings of ladder/curve; --invert of predict/serve/evaluate) and the
command's time budget.

Usage:
    add_data_args(p); settings = data_settings(args)
    add_invert_arg(p)                  # --invert auto|always|never, one help text for every verb
    deadline = launch_deadline("5m")   # training/clock.Deadline from the process's launch (None: no budget)
"""
from __future__ import annotations

import argparse


def launch_deadline(time_budget):
    """The whole command's Deadline (training/clock.py), counted from the process's launch; None without a budget."""
    from sortnet.config import parse_duration
    from sortnet.training.clock import Deadline

    seconds = parse_duration(time_budget)
    return Deadline.at_launch(seconds) if seconds else None


def add_invert_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--invert", choices=["auto", "always", "never"], default="auto",
                   help="auto: invert (255 - x) dark ink on light, nearly grey paper for a model trained on light "
                        "strokes on black (grey, <= 64 px, dark background: MNIST-like); colour photos and photo "
                        "models are never inverted. always / never: every image / none. predict, serve and "
                        "evaluate decide alike [default: auto]")


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="image folder (DATA/<class>/*, or train/ val/ test/), a label CSV or a built-in "
                                "dataset name")
    p.add_argument("--img-size", type=int, help="input side in px for the data (default: as `train` chooses)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="held-out share when there is no val/ folder "
                                                                   "[default: 0.2]")
    p.add_argument("--seed", type=int, default=0, help="split and training seed [default: 0]")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--data-root", help="where built-in datasets live")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)


def data_settings(args: argparse.Namespace) -> dict:
    return {"img_size": args.img_size, "val_fraction": args.val_fraction, "seed": args.seed, "device": args.device,
            "data_root": args.data_root, "progress": args.progress}
