"""`sortnet studio DIR`: a local page to collect images per class, train in seconds, correct and run the model.

Read endpoints (GET): / (the page, with the session token inside), /assets/* (page files, onnxruntime-web),
/api/state (classes, counts, newest images, training progress, model), /api/image/CLASS/NAME (a listed
image), /api/backbone.onnx and /api/model.onnx (what the page runs), /api/unknown-bank.bin (the knn bank
the page's "unknown" check compares with), /api/download/KIND (a file already made). Write endpoints (POST, token required; serve/guard): /api/classes (add), /api/classes/rename,
/api/images?cls=C (upload or captured frames), /api/trash, /api/train (starts a background training),
/api/predict (the server path for pages without WebAssembly), /api/export/KIND (onnx, int8, report),
/api/suspects/move and /api/suspects/leave (the "Possibly mislabelled" panel; GET /api/suspects lists it).
Every request's Host header is checked. Files are written only through StudioFolder (inside DIR).

Usage:
    app = create_studio_app(StudioFolder("photos/"), guard=Guard("127.0.0.1", 8765))
    sortnet studio photos/ [--model runs/digits/model.safetensors] [--port 8765]
"""
from __future__ import annotations

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from sortnet.errors import SortnetError
from sortnet.infer.predictor import Predictor
from sortnet.jsonsafe import finite_or_null
from sortnet.serve.app import asset_response
from sortnet.serve.limits import UploadError, decode_upload, read_body, replay_request
from sortnet.serve.listen import bind_socket
from sortnet.serve.page import page_html
from sortnet.studio.folder import StudioFolder
from sortnet.studio.guard import Guard
from sortnet.studio.session import Studio

MAX_FILES_PER_REQUEST = 64  # a capture burst is sent in a few requests of at most this many frames
MAX_BODY_BYTES = 64 * 1024 * 1024
RECENT = 12  # thumbnails per class in the state


def _json(request_body: bytes) -> dict:
    import json

    try:
        data = json.loads(request_body or b"{}")
    except ValueError:
        raise HTTPException(400, "send a JSON object") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "send a JSON object")
    return data


async def _images(request: Request) -> list[bytes]:
    """The uploaded images: multipart fields `files` (at most MAX_FILES_PER_REQUEST) or one raw body."""
    body = await read_body(request, MAX_BODY_BYTES)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return [body]
    try:
        form = await replay_request(request, body).form(max_files=MAX_FILES_PER_REQUEST,
                                                        max_fields=MAX_FILES_PER_REQUEST)
    except Exception as e:  # noqa: BLE001 - malformed multipart bodies raise assorted parser errors
        raise HTTPException(400, f"malformed multipart body (at most {MAX_FILES_PER_REQUEST} files)") from e
    return [await f.read() for f in form.getlist("files") if hasattr(f, "read")]


def create_studio_app(folder: StudioFolder, guard: Guard, model: str | None = None, load_backbone: bool = True
                      ) -> FastAPI:
    studio = Studio(folder, model, load_backbone=load_backbone)
    app = FastAPI(title="sortnet studio", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(guard.middleware)
    app.state.studio = studio

    @app.exception_handler(SortnetError)
    async def user_error(_request: Request, e: SortnetError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=400)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(page_html("studio").replace("{{TOKEN}}", guard.token))

    @app.get("/assets/{name:path}", include_in_schema=False)
    def page_asset(name: str) -> Response:
        return asset_response(name)

    @app.get("/api/state")
    def state() -> JSONResponse:
        classes = folder.classes()
        return JSONResponse(finite_or_null({
            "folder": str(folder.root), "classes": [{"name": c, "count": len(f), "recent": f[-RECENT:]}
                                                    for c, f in classes.items()],
            "training": studio.progress.snapshot(), "model": studio.model_info(),
            "backbone": {"img_size": studio.learner.prep.img_size} if studio.learner is not None else None}))

    @app.get("/api/image/{cls}/{name}")
    def image(cls: str, name: str) -> FileResponse:
        return FileResponse(folder.image_path(cls, name), headers={"Cache-Control": "max-age=3600"})

    @app.get("/api/backbone.onnx")
    def backbone() -> Response:
        return Response(studio.browser_graph("backbone"), media_type="application/octet-stream")

    @app.get("/api/model.onnx")
    def model_graph() -> Response:
        return Response(studio.browser_graph("graph"), media_type="application/octet-stream")

    @app.get("/api/unknown-bank.bin")
    def unknown_bank() -> Response:
        return Response(studio.unknown_bank(), media_type="application/octet-stream",
                        headers={"Cache-Control": "no-store"})

    @app.post("/api/classes")
    async def add_class(request: Request) -> dict:
        return {"name": folder.add_class(str(_json(await request.body()).get("name", "")))}

    @app.post("/api/classes/rename")
    async def rename_class(request: Request) -> dict:
        data = _json(await request.body())
        return {"name": folder.rename_class(str(data.get("old", "")), str(data.get("new", "")))}

    @app.post("/api/images")
    async def add_images(request: Request, cls: str = Query(..., max_length=200)) -> dict:
        folder.class_dir(cls)  # 400 before reading a body meant for no class
        names = []
        for data in await _images(request):
            names.append(folder.save_image(cls, data))
        if studio.learner is not None:
            studio.learner.prefetch()  # their features, while the person goes on collecting
        return {"saved": names}

    @app.post("/api/trash")
    async def trash(request: Request) -> dict:
        data = _json(await request.body())
        return {"moved_to": folder.trash(str(data.get("cls", "")), str(data.get("name", "")))}

    @app.post("/api/train")
    def train() -> dict:
        studio.start_training()
        return {"started": True}

    @app.post("/api/predict")
    async def predict(request: Request) -> JSONResponse:
        body = await read_body(request, folder.limits.max_image_bytes)
        predictor: Predictor | None = studio.predictor
        if predictor is None:
            raise HTTPException(409, "no model yet: press Train first")
        try:
            img = decode_upload(body, folder.limits.max_pixels)
        except UploadError as e:
            raise HTTPException(400, f"upload: {e}") from None
        pred = predictor.predict_images([img], top_k=len(predictor.classes))[0]
        return JSONResponse(finite_or_null(pred.to_dict()))

    @app.get("/api/suspects")
    def suspects() -> JSONResponse:
        return JSONResponse(finite_or_null(studio.suspects.snapshot()))

    @app.post("/api/suspects/move")
    async def move_suspect(request: Request) -> dict:
        moved = studio.suspects.move(str(_json(await request.body()).get("path", "")))
        if studio.learner is not None:
            studio.learner.prefetch()  # the file's new path: its features are looked up by path
        return moved

    @app.post("/api/suspects/leave")
    async def leave_suspect(request: Request) -> dict:
        return studio.suspects.leave(str(_json(await request.body()).get("path", "")))

    @app.post("/api/export/{kind}")
    def export(kind: str) -> dict:
        return {"download": f"api/download/{studio.export(kind)}"}

    @app.get("/api/download/{kind}")
    def download(kind: str) -> FileResponse:
        path = studio.made(kind)
        if path is None:
            raise HTTPException(404, "not made yet; press its button first")
        return FileResponse(path, filename=path.name)

    return app


def serve_studio(root: str, *, model: str | None = None, host: str = "127.0.0.1", port: int = 8765) -> int:
    """`sortnet studio`: load the backbone (and model), print the address, serve until Ctrl-C."""
    import uvicorn

    folder = StudioFolder(root)
    guard = Guard(host, port)
    app = create_studio_app(folder, guard, model)
    sock = bind_socket(host, port)  # a busy port fails here, before the address is printed
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}: anyone who can reach this machine can open the page", flush=True)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"sortnet studio on {folder.root}: open http://{shown}:{port}/  (Ctrl-C stops)", flush=True)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).run(sockets=[sock])
    return 0

