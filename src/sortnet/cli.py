"""The `sortnet` command: each verb parses its arguments and calls the API function of the same name.

Usage:
    sortnet train photos/ --epochs 10
    sortnet evaluate runs/photos/model.safetensors photos/
    sortnet predict runs/photos/model.safetensors new.jpg more/ --top-k 3 --json
    sortnet models | sortnet datasets
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import fields

from sortnet.config import TrainConfig

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
    "img_size": "square input side in px (default: median image size if <= 64, else 128)",
    "channels": "1 (grey) or 3 (colour) (default: from the images)",
    "val_fraction": "fraction of each class held out for validation when there is no val/ folder",
    "seed": "random seed (same seed on CPU -> same result)",
    "device": "auto | cpu | cuda",
    "precision": "auto (bf16 where the CPU/GPU supports it) | fp32 | bf16 | fp16",
    "compile": "torch.compile the model (helps on some GPUs)",
    "time_budget": "plan a complete schedule that trains within this time, e.g. 60s, 10m",
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
    "check": "check the data first (cached: counts, unreadable files, duplicates, leakage; see `sortnet check`)",
}


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", help="image folder (DATA/<class>/*, or train/ val/ test/) or a built-in "
                                           "dataset name: mnist, fashion-mnist, cifar10, cifar100, digits")
    p.add_argument("--out", help="run folder for model.safetensors, checkpoint, metrics, TensorBoard logs "
                                 "(default runs/<data name>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run exactly where it stopped")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                           help=TRAIN_HELP[f.name])
            continue
        kind = {"int | None": int, "float | None": float, "float": float, "int": int}.get(str(f.type), str)
        if f.name == "time_budget":
            kind = str
        p.add_argument(flag, dest=f.name, type=kind, default=f.default,
                       help=f"{TRAIN_HELP[f.name]} [default: {f.default}]")


def _cmd_train(args: argparse.Namespace) -> int:
    from sortnet.training.run import train

    settings = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    if args.resume:
        train(resume=args.resume, progress=args.progress, device=args.device)
        return 0
    if not args.data:
        raise SystemExit("sortnet train: give DATA (a folder or built-in dataset) or --resume RUN_DIR")
    train(args.data, out=args.out, **settings)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from sortnet.data.check import run_check
    from sortnet.data.check_report import format_report

    result = run_check(args.data, progress=not args.json and sys.stderr.isatty())
    print(json.dumps(result.report, indent=2) if args.json else format_report(result.report))
    return 1 if result.fatal else 0  # warnings alone never fail: only data that cannot train does


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from sortnet.evaluation.report import format_report
    from sortnet.evaluation.run import evaluate

    m = evaluate(args.model, args.data, device=args.device, tta=args.tta, data_root=args.data_root,
                 download=args.download, progress=not args.json)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    print(format_report(m, title=f"{args.model} on {args.data}"))
    for s in m["skipped_files"]:
        print(f"skipped {s['path']}: {s['reason']}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from sortnet.infer.predictor import Predictor

    if args.camera is not None or args.video:  # live sorting: frame by frame (sortnet/infer/stream.py)
        from sortnet.infer.stream import cmd_live

        return cmd_live(args)
    if not args.paths:
        raise SystemExit("sortnet predict: give image files/folders, or --camera INDEX / --video PATH")
    predictor = Predictor.from_file(args.model, device=args.device, invert=args.invert, tta=args.tta,
                                    runtime=args.runtime)
    preds = predictor.predict_paths(args.paths, top_k=args.top_k)
    if not preds:
        print("no image files found in the given paths", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([p.to_dict() for p in preds], indent=2))
    elif args.csv:
        w = csv.writer(sys.stdout)
        w.writerow(["path"] + [x for i in range(args.top_k) for x in (f"class{i + 1}", f"prob{i + 1}")] + ["error"])
        for p in preds:
            w.writerow([p.path] + [x for c, pr in p.top for x in (c, f"{pr:.6f}")] + [p.error or ""])
    else:
        for p in preds:
            shown = p.error and f"error: {p.error}" or "  ".join(f"{c} {pr:.3f}" for c, pr in p.top)
            print(f"{p.path}\t{shown}{'  (inverted)' if p.inverted else ''}")
    return 1 if all(p.error for p in preds) else 0


def _cmd_models(args: argparse.Namespace) -> int:
    from sortnet import list_models

    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['description']}")
    print("\nor any layer spec, e.g. --model 'conv32 conv32 maxpool drop0.25 conv64 maxpool flatten dense128 drop0.5'")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from sortnet import list_datasets

    if args.export:
        from sortnet.data.export_images import export_images

        written = export_images(args.export, args.out, split=args.split, limit=args.limit, data_root=args.data_root)
        print(f"wrote {len(written)} {args.split} images of {args.export} to {args.out}/<class>/")
        return 0
    rows = list_datasets(args.data_root)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = "present" if r["present"] else "missing (downloaded on first use)"
        print(f"{r['name']:<14} {r['description']:<48} {state}  {r.get('location', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sortnet", description="Train, evaluate and use image classifiers.")
    from sortnet import __version__

    parser.add_argument("--version", action="version", version=f"sortnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("train", help="train a model on a folder or built-in dataset",
                       description="Train a classifier. Writes RUN_DIR/model.safetensors, checkpoint.pt, "
                                   "metrics.json and TensorBoard logs.")
    _add_train_args(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("check", help="check a data folder or label CSV (never modifies it)",
                       description="Per-class counts, unreadable files with reasons, tiny/odd images, hidden and "
                                   "stray files, exact and near-duplicates (within a class, across classes, across "
                                   "train/val/test). Exit status 1 only for fatal problems (no classes, one class, "
                                   "a class with no readable image). Results are cached per file.")
    p.add_argument("data", help="image folder (DATA/<class>/*, or train/ val/ test/) or a label CSV (path,label[,group])")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("evaluate", help="metrics of a model on a folder or built-in test split")
    p.add_argument("model", help="model file (RUN_DIR/model.safetensors)")
    p.add_argument("data", help="folder (uses test/ if present, else every image) or built-in name (test split)")
    p.add_argument("--json", action="store_true", help="print all metrics as JSON")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True, help="test-time augmentation")
    p.add_argument("--data-root", help="where built-in datasets live")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=True)
    p.set_defaults(func=_cmd_evaluate)

    _add_predict_parser(sub)

    from sortnet.infer.use_cli import add_use_commands  # export, serve

    add_use_commands(sub)
    _add_list_parsers(sub)
    return parser


def _add_predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="classify image files and folders")
    p.add_argument("model", help="model file (RUN_DIR/model.safetensors)")
    p.add_argument("paths", nargs="*", help="image files and/or folders (searched recursively)")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to show per image [default: 3]")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="JSON output")
    out.add_argument("--csv", action="store_true", help="CSV output")
    p.add_argument("--invert", choices=["auto", "always", "never"], default="auto",
                   help="invert images whose background is opposite to the training images' "
                        "(e.g. dark ink on white paper for an MNIST model) [default: auto]")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto [default: cpu]")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True, help="test-time augmentation")
    p.add_argument("--runtime", choices=["auto", "torch", "onnx"], default="auto",
                   help="auto: onnxruntime on the CPU when installed (and for .onnx files), else torch")
    from sortnet.infer.stream import add_live_args

    add_live_args(p)
    p.set_defaults(func=_cmd_predict)


def _add_list_parsers(sub) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("datasets", help="list built-in datasets and whether they are present")
    p.add_argument("--data-root", help="where built-in datasets live")
    p.add_argument("--json", action="store_true")
    p.add_argument("--export", metavar="NAME", help="write images of dataset NAME as PNG files into --out/<class>/")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to --export")
    p.add_argument("--limit", type=int, default=20, help="how many images to --export [default: 20]")
    p.add_argument("--out", default="sortnet-images", help="folder for --export [default: sortnet-images]")
    p.set_defaults(func=_cmd_datasets)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sortnet.errors import USER_ERRORS

    try:
        return args.func(args)
    except USER_ERRORS as e:
        print(f"sortnet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"\nsortnet {args.command}: interrupted. {e}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
