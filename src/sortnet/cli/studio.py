"""`sortnet studio DIR`: teach a classifier in the browser (pip install 'sortnet[serve,onnx,pretrained]').

Usage:
    sortnet studio photos/ [--port 8765] [--model runs/digits/model.safetensors]
"""
from __future__ import annotations

import argparse

from sortnet.argtypes import port_number


def register(sub) -> None:
    p = sub.add_parser(
        "studio", help="teach it in the browser: collect webcam/file images per class, train, correct, export",
        description="Open a local page on DIR (a folder of class sub-folders, empty or not): add and rename "
                    "classes, record webcam bursts or drop files into a class, Train (pretrained features + a "
                    "linear head, seconds), see live predictions computed in the page (onnxruntime-web, offline), "
                    "save wrong frames into the right class, retrain; see the possibly mislabelled images and move "
                    "one to its suggested class with a button (logged; `sortnet check DIR --undo-moves` undoes); "
                    "draw digits for small grey models; download "
                    "the model file, ONNX, int8 ONNX and the report. Images are written as DIR/<class>/studio-*.jpg; "
                    "nothing is deleted (removed images go to DIR/.sortnet-trash/); the model and exports go to "
                    "DIR/.sortnet-studio/.")
    p.add_argument("folder", metavar="DIR", help="folder of class sub-folders (created when missing)")
    p.add_argument("--model", default=None,
                   help="start with this model file (e.g. a digits model: the page shows a drawing canvas)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind [default: 127.0.0.1, this machine only; "
                                                         "0.0.0.0 lets a phone on the network open it]")
    p.add_argument("--port", type=port_number, default=8765, help="1..65535 [default: 8765]")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sortnet.extras import require

    for module, extra in (("fastapi", "serve"), ("uvicorn", "serve"), ("multipart", "serve"), ("onnx", "onnx"),
                          ("onnxruntime", "onnx")):
        require(module, extra)
    from sortnet.studio.app import serve_studio

    return serve_studio(args.folder, model=args.model, host=args.host, port=args.port)
