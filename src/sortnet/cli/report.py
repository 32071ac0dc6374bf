"""`sortnet report MODEL DATA`: one self-contained HTML page of what the model learned and where it fails.

Usage:
    sortnet report runs/fm/model.safetensors fashion-mnist [--out DIR] [--dream-seconds 10]
"""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page: metrics, curves, failures, what the model learned",
                       description="Write OUT/report.html (images embedded; the PNGs also in OUT/report_images/): "
                                   "summary, training curves, metrics and calibration, confusion matrix, top losses "
                                   "with Grad-CAM, weight pictures / first-layer filters / class dreams, sample "
                                   "predictions. `sortnet train` writes one at the end of every run.")
    p.add_argument("model", help="model file (RUN_DIR/model.safetensors)")
    p.add_argument("data", help="folder (uses test/ if present, else val/, else every image) or built-in name "
                                "(its test split)")
    p.add_argument("--out", help="folder for report.html and report_images/ [default: the model file's folder]")
    p.add_argument("--top-losses", type=int, default=16, help="images in the top-losses gallery [default: 16]")
    p.add_argument("--samples", type=int, default=3, help="correct and wrong sample images per class [default: 3]")
    p.add_argument("--dream-steps", type=int, default=200,
                   help="optimizer steps of the class dreams, 0 for none [default: 200]")
    p.add_argument("--dream-seconds", type=float, default=10.0, help="time bound of the class dreams [default: 10]")
    p.add_argument("--seed", type=int, default=0, help="seed of the dreams and the sample choice [default: 0]")
    p.add_argument("--suspects", metavar="CSV", help="a suspects.csv from `sortnet check DATA --labels`: adds a "
                                                     "'Possibly mislabelled' gallery (image, given, suggested, score)")
    p.add_argument("--suspects-shown", type=int, default=24, help="suspects drawn in that gallery [default: 24]")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="run the (cached) data check on folders for the summary")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto [default: cpu]")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True, help="test-time augmentation")
    p.add_argument("--runtime", choices=["auto", "torch", "onnx"], default="auto",
                   help="engine for the predictions: auto = onnxruntime on the CPU when installed (and >= 2,000 "
                        "images), else torch")
    p.add_argument("--data-root", help="where built-in datasets live")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars")
    p.add_argument("--unknown-examples", metavar="DIR",
                   help="images of none of the model's classes: section 8 shows their unknown scores against the "
                        "threshold (share rejected, AUROC)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sortnet.reporting import IMAGES_DIR, make_report

    result = make_report(args.model, args.data, args.out, device=args.device, tta=args.tta, runtime=args.runtime,
                         data_root=args.data_root, download=args.download, top_losses=args.top_losses,
                         samples_per_class=args.samples, dream_steps=args.dream_steps,
                         dream_seconds=args.dream_seconds, seed=args.seed, check=args.check, progress=args.progress,
                         suspects=args.suspects, suspects_shown=args.suspects_shown,
                         unknown_examples=args.unknown_examples)
    print(f"wrote {result.path} ({result.html_bytes / 1e6:.2f} MB; its {len(result.figures)} pictures also in "
          f"{result.path.parent / IMAGES_DIR}/) in {result.seconds:.1f} s: "
          f"accuracy {result.scores['accuracy']:.4f}, ECE {result.scores['ece']:.4f}")
    return 0
