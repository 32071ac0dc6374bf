"""`sortnet train DATA` / `sortnet train --resume RUN_DIR`: every TrainConfig field is an option.

Usage:
    sortnet train photos/ --epochs 10 --out runs/photos
    sortnet train --resume runs/photos
"""
from __future__ import annotations

import argparse
import os
from dataclasses import fields
from pathlib import Path

from sortnet.config import ConfigError, TrainConfig

TRAIN_HELP = {
    "model": "registered model name (see `sortnet models`), a layer spec such as "
             "'conv32 conv32 maxpool drop0.25 flatten dense128', or auto (from image size)",
    "epochs": "passes over the training data (default: from the data size, or from --time-budget)",
    "batch_size": "images per step (default: from the recipe)",
    "lr": "peak learning rate (default: from the recipe)",
    "optimizer": "auto | sgd | adamw",
    "schedule": "onecycle (linear warmup, linear decay) | cosine",
    "warmup": "fraction of steps spent warming the learning rate up",
    "weight_decay": "weight decay (default: from the recipe)",
    "label_smoothing": "label smoothing for the loss (default: 0.1; 0 for runs of <= 6 epochs)",
    "augment": "auto | none | flip | crop | flip+crop | rrc+flip (auto: no flips for digits)",
    "tta": "average flipped/shifted views at evaluation",
    "img_size": "square input side in px (default: median image size if <= 64; photos: the pretrained model's "
                "own size, 224, or 128 from scratch)",
    "channels": "1 (grey) or 3 (colour) (default: from the images)",
    "val_fraction": "fraction of each class held out for validation when there is no val/ folder",
    "seed": "random seed (same seed on CPU -> same result)",
    "device": "auto | cpu | cuda",
    "precision": "auto (CPU: bf16 only where it measured faster and trained like fp32 here, remembered; "
                 "GPU: bf16) | fp32 | bf16 | fp16",
    "compile": "torch.compile the model (helps on some GPUs)",
    "time_budget": "the whole command (start-up, training, evaluation, model file) within this time, e.g. 20s, "
                   "10m: the schedule, model size and test-time augmentation are planned to fit it",
    "data_root": "where built-in datasets are read/downloaded (default $SORTNET_DATA or ~/.cache/sortnet/datasets)",
    "download": "download missing built-in datasets (--no-download to stay offline)",
    "progress": "progress bars and messages (--no-progress for quiet runs)",
    "group_by": "regex on file names; files with the same match (first group), e.g. a driver or photo id, "
                "stay on one side of the automatic train/val split (a CSV's group column does the same)",
    "dedup_split": "keep exact and near-duplicate images on one side of the automatic split",
    "balance": "class imbalance: auto (weights when the largest class is >= 1.5x the smallest) | sampler "
               "(class-balanced sampling) | weights (class-weighted loss) | none",
    "max_memory": "decoded images allowed in RAM before training streams them from an on-disk cache "
                  "(auto = min(25%% of available RAM, 1G); e.g. 4G, or 0 to always stream)",
    "ensemble": "train N models (seeds SEED..SEED+N-1) on one prepared split, each with 1/N of --time-budget; "
                "RUN_DIR/model.safetensors is their ensemble (averaged probabilities), RUN_DIR/member-K/ each member",
    "check": "check the data first (cached: counts, unreadable files, duplicates, leakage; see `sortnet check`)",
    "follow_links": "follow symbolic links that lead out of the data folder (by default they are skipped and "
                    "listed; links inside it are followed, each real folder once)",
    "report": "write RUN_DIR/report.html at the end: curves, metrics, confusion matrix, top losses, weights, "
              "dreams (see `sortnet report`)",
    "pretrained": "start from ImageNet weights (default: yes for photos, with the bundled efficientnet-lite0; "
                  "torchvision/timm models download theirs once, then work offline); --no-pretrained: random init",
    "weights": "local file of pretrained weights (.pth state dict or .safetensors) used instead of a download",
    "finetune": "pretrained models: head (frozen backbone, features cached, a linear head in seconds) | partial:N "
                "(then the last N blocks train on cached activations; plain `partial`: N chosen) | full (then every "
                "layer, discriminative learning rates) | auto (by measured costs, device and --time-budget)",
    "unknown_accept": "the unknown threshold accepts this share of known validation images; images scoring above "
                      "it are answered 'unknown (closest: X)' (change it later: predict/serve --unknown-accept)",
    "unknown_method": "how unlike the known classes an image is: auto (knn+mahalanobis, chosen by benchmark) | "
                      "knn+mahalanobis | knn | knn+msp | knn+energy | mahalanobis | energy | msp | none (the model never "
                      "says unknown)",
}


def add_train_args(p: argparse.ArgumentParser) -> None:
    """DATA, --out, --resume and one option per TrainConfig field (same names as sortnet.train keywords)."""
    p.add_argument("data", nargs="?", help="image folder (DATA/<class>/*, or train/ val/ test/) or a built-in "
                                           "dataset name: mnist, fashion-mnist, cifar10, cifar100, digits")
    p.add_argument("--out", help="run folder for model.safetensors, checkpoint, metrics, TensorBoard logs "
                                 "(default runs/<data name>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run exactly where it stopped")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="data-parallel training in N processes on this machine: runs `torchrun --nproc-per-node N "
                        "-m sortnet train ...` (gloo on CPUs, nccl on GPUs; see README) [default: 1]")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool, "bool | None"):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                           help=TRAIN_HELP[f.name])
            continue
        kind = {"int | None": int, "float | None": float, "float": float, "int": int}.get(str(f.type), str)
        if f.name == "time_budget":
            kind = str
        p.add_argument(flag, dest=f.name, type=kind, default=f.default,
                       help=f"{TRAIN_HELP[f.name]} [default: {f.default}]")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model on a folder or built-in dataset",
                       description="Train a classifier. Writes RUN_DIR/model.safetensors, checkpoint.pt, "
                                   "metrics.json, TensorBoard logs and report.html (see `sortnet report`).")
    add_train_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    if args.nproc < 1:
        raise SystemExit("sortnet train: --nproc must be at least 1")
    if not args.resume:
        if not args.data:
            raise SystemExit("sortnet train: give DATA (a folder or built-in dataset) or --resume RUN_DIR")
        from sortnet.runfolder.layout import check_new_run_dir, default_run_dir

        TrainConfig.from_dict(settings)  # bad settings and a bad --out fail in milliseconds, before torch loads
        if int(os.environ.get("RANK", "0")) == 0:  # under torchrun rank 0 alone owns the run folder
            check_new_run_dir(Path(args.out) if args.out else default_run_dir(args.data), args.data)
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:  # not yet under torchrun: launch it
        from sortnet.training.distributed import launch

        return launch(args.nproc, as_argv(args))
    from sortnet import train
    from sortnet.cli.common import launch_deadline

    if args.resume:  # the budget is the run's own (run.json), counted again from this command's launch
        budget = _saved_budget(Path(args.resume))
        train(resume=args.resume, progress=args.progress, device=args.device, deadline=launch_deadline(budget))
        return 0
    # --time-budget covers the whole command, from launch to the process's exit
    train(args.data, out=args.out, deadline=launch_deadline(args.time_budget), **settings)
    return 0


def _saved_budget(run_dir: Path):
    """The interrupted run's --time-budget from its run.json; None where that cannot be read (train() says why)."""
    from sortnet.runfolder.record import read_run_file

    try:
        return read_run_file(run_dir)["config"].get("time_budget")
    except (ConfigError, AttributeError):
        return None


def as_argv(args: argparse.Namespace) -> list[str]:
    """The `sortnet train ...` arguments that give these args again (without --nproc): what each rank runs."""
    argv = ["train"] + ([args.data] if args.data else [])
    argv += ["--out", args.out] if args.out else []
    argv += ["--resume", args.resume] if args.resume else []
    for f in fields(TrainConfig):
        value, flag = getattr(args, f.name), "--" + f.name.replace("_", "-")
        if value == f.default:
            continue
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, str(value)]
    return argv
