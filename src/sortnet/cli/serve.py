"""`sortnet serve MODEL`: HTTP API + browser page for one model (FastAPI + uvicorn; pip install 'sortnet[serve]').

Usage:
    sortnet serve runs/x/model.safetensors [--host 127.0.0.1] [--port 8000] [--workers N]
"""
from __future__ import annotations

import argparse

from sortnet.argtypes import int_at_least, port_number, positive_float
from sortnet.cli.common import add_invert_arg
from sortnet.cli.unknown_args import add_unknown_args, unknown_options


def register(sub) -> None:
    p = sub.add_parser("serve", help="HTTP API + browser page for a model (FastAPI + uvicorn)",
                       description="Serve one model: POST /predict, GET /model, GET /health, GET / (page), /docs.")
    p.add_argument("model", help="model file (RUN_DIR/model.safetensors) or an ONNX export (.onnx)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind [default: 127.0.0.1, this machine "
                                                         "only; 0.0.0.0 exposes it to the network]")
    p.add_argument("--port", type=port_number, default=8000, help="1..65535 [default: 8000]")
    p.add_argument("--runtime", choices=["auto", "torch", "onnx"], default="auto",
                   help="auto: onnxruntime when installed, else torch [default: auto]")
    p.add_argument("--workers", type=int_at_least(0), default=0,
                   help="concurrent inference jobs [default: CPU cores]")
    p.add_argument("--queue", type=int_at_least(0), default=64,
                   help="requests that may wait; more get 503 [default: 64]")
    p.add_argument("--timeout", type=positive_float, default=10.0,
                   help="seconds per request once admitted, before 503 [default: 10]")
    p.add_argument("--max-upload-mb", type=positive_float, default=10.0, help="request body limit, MB [default: 10]")
    p.add_argument("--max-pixels", type=int_at_least(1), default=40_000_000,
                   help="pixels per image, from its header (400 above) [default: 40000000]")
    p.add_argument("--max-request-pixels", type=int_at_least(1), default=100_000_000,
                   help="pixels of all images in one request, from their headers (413 above) [default: 100000000]")
    p.add_argument("--max-total-pixels", type=int_at_least(1), default=200_000_000,
                   help="pixels of all requests in flight (503 above): bounds decoding memory [default: 200000000]")
    p.add_argument("--body-timeout", type=positive_float, default=20.0,
                   help="seconds to receive a request body (408 after); no worker is held meanwhile [default: 20]")
    p.add_argument("--header-timeout", type=positive_float, default=10.0,
                   help="seconds to receive request headers before the connection is closed [default: 10]")
    p.add_argument("--max-connections", type=int_at_least(1), default=256,
                   help="open connections; new requests beyond get 503 [default: 256]")
    add_invert_arg(p)
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True, help="test-time augmentation")
    p.add_argument("--access-log", action="store_true", help="log every request (slower under load)")
    add_unknown_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sortnet.extras import require

    for module in ("fastapi", "uvicorn", "multipart"):  # before importing the app, which needs them
        require(module, "serve")
    from sortnet.serve.app import ServeLimits, serve_model

    limits = ServeLimits(max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_pixels=args.max_pixels,
                         max_request_pixels=args.max_request_pixels, max_total_pixels=args.max_total_pixels,
                         workers=args.workers, queue=args.queue, timeout_s=args.timeout,
                         body_timeout_s=args.body_timeout, header_timeout_s=args.header_timeout,
                         max_connections=args.max_connections)
    return serve_model(args.model, host=args.host, port=args.port, runtime=args.runtime, invert=args.invert,
                       tta=args.tta, limits=limits, access_log=args.access_log, **unknown_options(args))
