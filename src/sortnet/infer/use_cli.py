"""CLI verbs for using a model: `sortnet export` and `sortnet serve` (argparse only; heavy imports are lazy).

Usage (from sortnet.cli.build_parser):
    add_use_commands(sub)
    sortnet export runs/x/model.safetensors --format onnx [--out FILE] [--quantize int8 --calibration DATA]
    sortnet serve runs/x/model.safetensors [--host 127.0.0.1] [--port 8000]
"""
from __future__ import annotations

import argparse

from sortnet.errors import SortnetError


class MissingExtraError(SortnetError):
    """An optional dependency needed by the command is not installed; the message names the pip command."""


def _need(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError as e:
        raise MissingExtraError(f"this command needs {module}, which is not installed: "
                                f"pip install 'sortnet[{extra}]'") from e


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (optionally int8) or TorchScript",
                       description="Export a model file. The graph takes uint8 [batch, C, H, W] images already "
                                   "resized as the model's preprocessing says, normalizes inside, and returns "
                                   "probabilities and logits; class names and preprocessing are in its metadata.")
    p.add_argument("model", help="model file (RUN_DIR/model.safetensors)")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="[default: onnx]")
    p.add_argument("--out", help="output file [default: next to the model, model.onnx / model.int8.onnx / "
                                 "model.torchscript.pt]")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True,
                   help="include the model's test-time-augmentation views in the graph [default: yes]")
    p.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="int8: static quantization (about 3x faster on CPUs), checked on held-out images")
    p.add_argument("--calibration", metavar="DATA", help="with --quantize int8: labelled images of the model's "
                                                        "classes (folder or built-in dataset name)")
    p.add_argument("--max-accuracy-drop", type=float, default=0.5,
                   help="refuse the int8 file if held-out accuracy drops by more points [default: 0.5]")
    p.add_argument("--data-root", help="where built-in datasets live")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from sortnet.infer.export import export_model

    if args.format == "onnx":
        _need("onnx", "onnx")
        if args.quantize == "int8":
            _need("onnxruntime", "onnx")
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


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="HTTP API + browser page for a model (FastAPI + uvicorn)",
                       description="Serve one model: POST /predict, GET /model, GET /health, GET / (page), /docs.")
    p.add_argument("model", help="model file (RUN_DIR/model.safetensors) or an ONNX export (.onnx)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind [default: 127.0.0.1, this machine "
                                                         "only; 0.0.0.0 exposes it to the network]")
    p.add_argument("--port", type=int, default=8000, help="[default: 8000]")
    p.add_argument("--runtime", choices=["auto", "torch", "onnx"], default="auto",
                   help="auto: onnxruntime when installed, else torch [default: auto]")
    p.add_argument("--workers", type=int, default=0, help="concurrent inference jobs [default: CPU cores]")
    p.add_argument("--queue", type=int, default=64, help="requests that may wait; more get 503 [default: 64]")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request before 503 [default: 10]")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="request body limit, MB [default: 10]")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="pixels per image [default: 40000000]")
    p.add_argument("--invert", choices=["auto", "always", "never"], default="auto")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True, help="test-time augmentation")
    p.add_argument("--access-log", action="store_true", help="log every request (slower under load)")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    for module in ("fastapi", "uvicorn", "multipart"):
        _need(module, "serve")
    from sortnet.serve.app import serve_cli

    return serve_cli(args)


def add_use_commands(sub) -> None:
    _add_export(sub)
    _add_serve(sub)
