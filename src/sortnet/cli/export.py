"""`sortnet export MODEL`: ONNX (optionally int8, accuracy-checked) or TorchScript, metadata included.

Usage:
    sortnet export runs/x/model.safetensors --format onnx [--out FILE] [--quantize int8 --calibration DATA]
"""
from __future__ import annotations

import argparse

from sortnet.argtypes import positive_float


def register(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (optionally int8) or TorchScript",
                       description="Export a model file. The graph takes uint8 [batch, C, H, W] images already "
                                   "resized as the model's preprocessing says, normalizes inside, and returns "
                                   "probabilities and logits; class names and preprocessing are in its metadata.")
    p.add_argument("model", help="model file (RUN_DIR/model.safetensors)")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="[default: onnx]")
    p.add_argument("--out", help="a NEW output file: an existing file, the model itself, a folder, a link or a "
                                 "device is refused, never replaced [default: next to the model, model.onnx / "
                                 "model.int8.onnx / model.torchscript.pt]")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True,
                   help="include the model's test-time-augmentation views in the graph [default: yes]")
    p.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="int8: static quantization (about 3x faster on CPUs), checked on held-out images")
    p.add_argument("--calibration", metavar="DATA", help="with --quantize int8: labelled images of the model's "
                                                        "classes (folder or built-in dataset name)")
    p.add_argument("--max-accuracy-drop", type=positive_float, default=0.5,
                   help="refuse the int8 file if held-out accuracy drops by more points [default: 0.5]")
    p.add_argument("--data-root", help="where built-in datasets live")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sortnet.extras import require
    from sortnet.infer.export import export_model

    if args.format == "onnx":  # say what to install before loading the model
        require("onnx", "onnx")
        if args.quantize == "int8":
            require("onnxruntime", "onnx")
    info = export_model(args.model, args.format, args.out, tta=args.tta, quantize=args.quantize,
                        calibration=args.calibration, max_accuracy_drop=args.max_accuracy_drop,
                        data_root=args.data_root, progress=True)
    print(f"wrote {info['path']} ({info['bytes'] / 1e6:.1f} MB, {info['format']})")
    q = info.get("quantization")
    if q:
        print(f"int8 on {q['heldout_images']} held-out images: accuracy {q['accuracy_fp32']:.2f}% -> "
              f"{q['accuracy_int8']:.2f}% ({q['accuracy_change_points']:+.2f} points), "
              f"top-1 agreement {q['top1_agreement']:.2f}%")
    return 0
