"""`sortnet serve MODEL`: an HTTP API (FastAPI + uvicorn) and a browser page for one fixed model.

Endpoints: POST /predict (multipart `file`, or several `files`, or raw image bytes) -> top-k classes;
GET /model (classes, input size, metrics); GET /health; GET / (drop/pick images or use the camera);
GET /report (the model's `sortnet report` page, when report.html lies beside the model file; the page
links it); GET /docs and /openapi.json (OpenAPI). The model (and its report) is chosen at start-up: no
endpoint loads a model or a file from a path or URL. Limits: body bytes (413 before decoding), body read
deadline (408, before a worker slot is taken), header deadline and connection cap (uvicorn, serve/deadlines.py), pixels per image (400) and per
request (413) read from the headers before decoding, decoded pixels across in-flight requests (503),
non-images (400, generic text), workers + bounded queue (503 at once when full), a request timeout (503).
Each image is decoded, shrunk to the model's input and dropped before the next one is decoded, and
freed heap pages go back to the OS after big requests (glibc malloc_trim).

Usage:
    sortnet serve runs/x/model.safetensors [--host 127.0.0.1] [--port 8000]
    curl -F file=@cat.jpg http://127.0.0.1:8000/predict
    app = create_app(Predictor.from_file("model.onnx"), ServeLimits(max_upload_bytes=5_000_000))
"""
from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from sortnet.infer.predictor import Predictor
from sortnet.jsonsafe import finite_or_null
from sortnet.parallel import usable_cores
from sortnet.serve.limits import (Busy, Gate, PixelBudget, TimedOut, UploadError, decode_upload, read_body,
                                  map_large_blocks, release_memory, replay_request, upload_pixels)
from sortnet.serve.listen import bind_socket
from sortnet.serve.page import asset, page_html

TRIM_MIN_PIXELS = 1_000_000  # requests that decoded at least this many pixels hand freed memory back afterwards


@dataclass
class ServeLimits:
    max_upload_bytes: int = 10 * 1024 * 1024  # whole request body; larger -> 413 before decoding
    max_pixels: int = 40_000_000  # width * height per image, read from the header (decompression bombs)
    max_request_pixels: int = 100_000_000  # sum over a request's images, from their headers -> 413
    max_total_pixels: int = 200_000_000  # sum over all in-flight requests -> 503 (bounds decode memory)
    max_files: int = 16  # images per request
    workers: int = 0  # concurrent inference jobs; 0 = usable CPU cores
    queue: int = 64  # requests allowed to wait for a worker; beyond workers + queue -> 503 at once
    timeout_s: float = 10.0  # per request, from admission to answer -> 503
    body_timeout_s: float = 20.0  # to receive the whole body -> 408; no worker slot is held meanwhile
    header_timeout_s: float = 10.0  # to receive the request headers, else the connection is closed (uvicorn)
    keep_alive_s: float = 5.0  # idle keep-alive connections are closed after this (uvicorn)
    max_connections: int = 256  # open connections; beyond -> 503 (uvicorn limit_concurrency)


def _model_info(predictor: Predictor, limits: ServeLimits) -> dict:
    meta, prep = predictor.meta, predictor.prep
    return {
        "classes": list(predictor.classes), "num_classes": len(predictor.classes), "arch": meta.arch,
        "input": {"img_size": prep.img_size, "channels": prep.channels, "resize": prep.resize},
        "metrics": meta.metrics, "quantization": meta.quantization,
        "runtime": predictor.runtime, "tta": predictor.tta.to_dict() if predictor.tta else None,
        "sortnet_version": meta.provenance.sortnet_version,
        "temperature": getattr(predictor, "temperature", 1.0),  # test doubles and older predictors lack these
        "unknown_threshold": getattr(predictor, "unknown_threshold", None),
        "limits": {k: v for k, v in asdict(limits).items()},
    }


async def _uploads(request: Request, limits: ServeLimits) -> tuple[list[tuple[str | None, bytes]], bool]:
    """((filename, bytes) per uploaded image, whether field `files` was used): multipart or the raw body."""
    body = await read_body(request, limits.max_upload_bytes)
    ctype = request.headers.get("content-type", "").lower()
    if not ctype.startswith("multipart/form-data"):
        return [(None, body)], False
    try:
        form = await replay_request(request, body).form(max_files=limits.max_files, max_fields=limits.max_files)
    except Exception as e:  # noqa: BLE001 - malformed multipart bodies raise assorted parser errors
        raise HTTPException(400, "malformed multipart body; send the image in a field named 'file' or 'files'") from e
    items = [v for key in ("file", "files") for v in form.getlist(key) if hasattr(v, "read")]
    multi = len(items) > 1 or any(hasattr(v, "read") for v in form.getlist("files"))
    if not items:
        raise HTTPException(400, "no image found: send multipart field 'file' (or 'files'), or raw image bytes")
    if len(items) > limits.max_files:
        raise HTTPException(400, f"too many images in one request (limit {limits.max_files})")
    return [(item.filename, await item.read()) for item in items], multi


def _request_pixels(uploads: list[tuple[str | None, bytes]], limits: ServeLimits) -> int:
    """Decoded pixels the request will need, from the image headers alone: 400 for a bad image, 413 over budget."""
    total = 0
    for i, (_, data) in enumerate(uploads):
        try:
            total += upload_pixels(data, limits.max_pixels)
        except UploadError as e:
            where = f"image {i + 1}" if len(uploads) > 1 else "upload"
            raise HTTPException(400, f"{where}: {e}") from None  # generic text only: no paths or parser output
    if total > limits.max_request_pixels:
        raise HTTPException(413, f"images hold {total:,} pixels in all; the limit per request is "
                                 f"{limits.max_request_pixels:,} (send fewer or smaller images)")
    return total


def _decoded(uploads: list[tuple[str | None, bytes]], limits: ServeLimits):
    """Each upload decoded in turn; the consumer shrinks it to the model's input before the next is decoded."""
    for i, (_, data) in enumerate(uploads):
        try:
            yield decode_upload(data, limits.max_pixels)
        except UploadError as e:
            where = f"image {i + 1}" if len(uploads) > 1 else "upload"
            raise HTTPException(400, f"{where}: {e}") from None


def _predict_batch(predictor, uploads: list[tuple[str | None, bytes]], limits: ServeLimits, top_k: int,
                   pixels: int) -> list:
    """Runs on a worker thread: decode one image at a time into the model's input, then one batched model call."""
    try:
        preds = predictor.predict_images(_decoded(uploads, limits), top_k=top_k)
    finally:
        if pixels >= TRIM_MIN_PIXELS:
            release_memory()  # a 40 MP decode leaves ~120 MB of freed heap that glibc would otherwise keep
    return [{"filename": name, **p.to_dict()} for (name, _), p in zip(uploads, preds)]  # the one prediction shape


def _busy() -> JSONResponse:
    return JSONResponse({"detail": "server busy: too many requests or pixels in flight; retry shortly"},
                        status_code=503, headers={"Retry-After": "1"})


def asset_response(name: str) -> Response:
    """One of the pages' files (serve/assets/), looked up by name in a fixed listing: 404 for anything else."""
    found = asset(name)
    if found is None:
        raise HTTPException(404, "no such page file")
    body, media_type = found
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})


def create_app(predictor, limits: ServeLimits | None = None, report: str | Path | None = None) -> FastAPI:
    """The FastAPI app serving `predictor` (a sortnet Predictor, fixed for the app's lifetime).

    report: a `sortnet report` HTML file served at GET /report (fixed at start-up, like the model).
    """
    limits = limits or ServeLimits()
    if limits.workers <= 0:
        limits.workers = usable_cores()
    gate, budget = Gate(limits.workers, limits.queue), PixelBudget(limits.max_total_pixels)
    info = _model_info(predictor, limits)
    report_file = Path(report) if report is not None and Path(report).is_file() else None
    info["report"] = "report" if report_file else None  # relative URL, so the page works behind a path prefix
    app = FastAPI(title="sortnet", version=str(info["sortnet_version"] or ""),
                  description="Image classifier: POST an image to /predict for its top classes.")
    app.state.gate, app.state.budget, app.state.predictor, app.state.limits = gate, budget, predictor, limits
    app.router.on_shutdown.append(gate.close)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(page_html("serve"))

    @app.get("/assets/{name:path}", include_in_schema=False)
    def page_asset(name: str) -> Response:
        return asset_response(name)

    @app.get("/report", response_class=HTMLResponse, include_in_schema=False)
    def report_page() -> HTMLResponse:
        if report_file is None or not report_file.is_file():
            raise HTTPException(404, "no report for this model; make one with `sortnet report MODEL DATA`")
        return HTMLResponse(report_file.read_text(encoding="utf-8"))

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "active_requests": gate.active, "pixels_in_flight": budget.used}

    @app.get("/model")
    def model() -> JSONResponse:
        return JSONResponse(finite_or_null(info))

    @app.post("/predict", responses={400: {}, 408: {}, 413: {}, 503: {}})
    async def predict(request: Request, top_k: int = Query(3, ge=1, le=100)) -> JSONResponse:
        """Top-k classes for one image (multipart `file` or raw bytes) or several (multipart `files`)."""
        try:  # the body arrives before admission: a slow client holds no worker or queue slot
            uploads, multi = await asyncio.wait_for(_uploads(request, limits), limits.body_timeout_s)
        except asyncio.TimeoutError:
            return JSONResponse({"detail": f"request body not received within {limits.body_timeout_s:g} s"},
                                status_code=408, headers={"Connection": "close"})
        pixels = _request_pixels(uploads, limits)
        try:
            budget.reserve(pixels)
        except Busy:
            return _busy()
        try:
            return await _admitted(uploads, multi, pixels, top_k)
        finally:
            budget.release(pixels)

    async def _admitted(uploads, multi: bool, pixels: int, top_k: int) -> JSONResponse:
        try:
            gate.admit()
        except Busy:
            return _busy()
        try:
            results = await gate.run(lambda: _predict_batch(predictor, uploads, limits, top_k, pixels),
                                     limits.timeout_s)
        except TimedOut:
            return JSONResponse({"detail": f"request timed out after {limits.timeout_s:g} s"}, status_code=503)
        finally:
            gate.release()
        return JSONResponse(finite_or_null({"results": results} if multi else results[0]))  # never bare NaN

    return app


def serve_model(model: str, *, host: str = "127.0.0.1", port: int = 8000, runtime: str = "auto",
                invert: str = "auto", tta: bool = True, limits: ServeLimits | None = None,
                access_log: bool = False, unknown_accept: float | None = None,
                unknown_threshold: float | None = None) -> int:
    """`sortnet serve`: load the model once, then answer HTTP requests until Ctrl-C (uvicorn)."""
    import uvicorn

    from sortnet.serve.deadlines import server_options

    limits = limits or ServeLimits()
    limits.workers = limits.workers or usable_cores()
    threads = max(1, usable_cores() // limits.workers)  # workers x threads = cores: no oversubscription under load
    predictor = Predictor.from_file(model, runtime=runtime, threads=threads, invert=invert, tta=tta,
                                    unknown_accept=unknown_accept, unknown_threshold=unknown_threshold)
    from sortnet.reporting.layout import report_path_for

    app = create_app(predictor, limits, report=report_path_for(model))
    sock = bind_socket(host, port)  # a busy port fails here, before any URL is printed
    map_large_blocks()  # upload bodies and decoded images go back to the OS after each request (glibc)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}: anyone who can reach this machine can use the model", flush=True)
    print(f"sortnet serve: {len(predictor.classes)} classes, runtime {predictor.runtime}; "
          f"page http://{host}:{port}/  API docs http://{host}:{port}/docs", flush=True)
    config = uvicorn.Config(app, host=host, port=port, access_log=access_log, log_level="info",
                            **server_options(limits))
    uvicorn.Server(config).run(sockets=[sock])
    return 0
