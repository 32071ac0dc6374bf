"""Arguments shared by several verbs (data settings of ladder/curve; --invert of predict/serve/evaluate) and the
command's start time.

Usage:
    add_data_args(p); settings = data_settings(args)
    add_invert_arg(p)                  # --invert auto|always|never, one help text for every verb
    started = COMMAND_STARTED          # time.perf_counter() at the process's launch: budgets count from there
"""
from __future__ import annotations

import argparse
import os
import time


def seconds_since_process_start() -> float:
    """How long this process has run (Linux /proc; 0 elsewhere): budgets count from the command's launch."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start time, clock ticks after boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


COMMAND_STARTED = time.perf_counter() - seconds_since_process_start()


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
