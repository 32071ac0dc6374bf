"""HTTP API of `sortnet serve`: endpoints, response shapes, and every limit (413, 400, 503, timeout)."""
from __future__ import annotations

import asyncio
import io
import struct
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import make_image
from modelkit import FRUIT, make_model_file, running_server

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
httpx = pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from sortnet.cli import build_parser  # noqa: E402
from sortnet.infer.predictor import Predictor  # noqa: E402
from sortnet.serve.app import ServeLimits, create_app  # noqa: E402


def png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (a decompression bomb's header) and no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    path = make_model_file(tmp_path_factory.mktemp("serve") / "model.safetensors", "cnn-small", 3, 16)
    return Predictor.from_file(path, runtime="auto")


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor, ServeLimits(max_upload_bytes=200_000, max_pixels=1_000_000))) as c:
        yield c


def test_health_model_docs_page(client):
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/model").json()
    assert info["classes"] == FRUIT and info["input"] == {"img_size": 16, "channels": 3,
                                                          "resize": "shorter_center_crop"}
    assert info["metrics"]["test"]["accuracy"] == 0.9 and info["runtime"] == "onnx"
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {"/predict", "/model", "/health"}  # nothing takes a model path or URL
    assert [p["name"] for p in spec["paths"]["/predict"]["post"].get("parameters", [])] == ["top_k"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "Drop images" in page.text
    script = client.get("/assets/serve.js")  # the page's own files, served from the package (no CDN)
    assert script.status_code == 200 and "getUserMedia" in script.text
    assert script.headers["content-type"].startswith("text/javascript")
    for bad in ("../app.py", "..%2Fapp.py", "/etc/passwd", "nope.js", "vendor/../../app.py"):
        assert client.get("/assets/" + bad).status_code == 404, bad


def test_predict_file_files_and_raw(client, predictor):
    img = make_image(1, 40)
    expected = predictor.predict_images([img], top_k=3)[0]
    one = client.post("/predict", files={"file": ("x.png", png_bytes(img), "image/png")}).json()
    assert one["class"] == expected.label and one["filename"] == "x.png"
    assert [p["class"] for p in one["predictions"]] == [c for c, _ in expected.top]
    assert abs(one["predictions"][0]["probability"] - expected.top[0][1]) < 1e-5
    raw = client.post("/predict?top_k=2", content=png_bytes(img, "JPEG"), headers={"content-type": "image/jpeg"})
    assert raw.status_code == 200 and len(raw.json()["predictions"]) == 2
    many = client.post("/predict", files=[("files", ("a.png", png_bytes(make_image(0, 16)), "image/png")),
                                          ("files", ("b.png", png_bytes(make_image(2, 16)), "image/png"))]).json()
    assert [r["filename"] for r in many["results"]] == ["a.png", "b.png"]
    assert all(r["class"] in FRUIT for r in many["results"])


def test_too_large_body_is_413_before_decoding(client):
    junk = b"x" * 300_000  # not an image: a 400 would mean it was decoded
    r = client.post("/predict", content=junk, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    r = client.post("/predict", files={"file": ("big.bin", junk, "image/png")})
    assert r.status_code == 413

    def chunked():  # no content-length: counted while streaming
        for _ in range(40):
            yield b"y" * 10_000

    r = client.post("/predict", content=chunked(), headers={"content-type": "application/octet-stream"})
    assert r.status_code == 413


@pytest.mark.parametrize("payload", [b"hello, I am not an image", b"", png_bytes(make_image(0, 32))[:60],
                                     b"%PDF-1.4\n" + b"0" * 100, png_header_only(0x7FFF, 0)])
def test_non_images_are_400_with_generic_message(client, payload):
    r = client.post("/predict", files={"file": ("/etc/secret/x.png", payload, "image/png")})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert "image" in detail
    for leak in ("Traceback", "/etc", "PIL", "cannot identify", "Error", ".py"):
        assert leak not in detail


def test_too_many_pixels_is_400(client):
    big = png_bytes(Image.new("L", (1100, 1000)))  # 1.1 MP > 1 MP limit, tiny file
    r = client.post("/predict", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 400 and "too large" in r.json()["detail"]
    bomb = png_header_only(100_000, 100_000)  # 10 gigapixels claimed by a 100-byte file
    r = client.post("/predict", content=bomb, headers={"content-type": "image/png"})
    assert r.status_code == 400 and "too large" in r.json()["detail"]


class BlockingPredictor:
    """Wraps a Predictor; predict_images waits until `release` is set (to fill workers and the queue)."""

    def __init__(self, inner: Predictor) -> None:
        self.inner, self.release, self.started = inner, threading.Event(), threading.Event()
        for name in ("meta", "prep", "classes", "runtime", "tta"):
            setattr(self, name, getattr(inner, name))

    def predict_images(self, images, top_k=3):
        self.started.set()
        self.release.wait(20)
        return self.inner.predict_images(images, top_k)


async def _post_many(url: str, n: int, body: bytes) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as c:
        rs = await asyncio.gather(*[c.post(f"{url}/predict", content=body, headers={"content-type": "image/png"})
                                    for _ in range(n)])
    return [r.status_code for r in rs]


def test_full_queue_gives_fast_503_and_recovers(predictor):
    blocking = BlockingPredictor(predictor)
    app = create_app(blocking, ServeLimits(workers=1, queue=2, timeout_s=20))
    body = png_bytes(make_image(0, 16))
    with running_server(app) as url:
        holder = threading.Thread(target=lambda: asyncio.run(_post_many(url, 3, body)))
        holder.start()  # 1 running + 2 queued = capacity
        assert blocking.started.wait(10)
        while app.state.gate.active < 3:
            threading.Event().wait(0.01)
        r = httpx.post(f"{url}/predict", content=body, headers={"content-type": "image/png"}, timeout=5)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.elapsed.total_seconds() < 1.0  # refused at once, not queued
        blocking.release.set()
        holder.join(20)
        r = httpx.post(f"{url}/predict", content=body, headers={"content-type": "image/png"}, timeout=5)
        assert r.status_code == 200 and app.state.gate.active == 0


def test_request_timeout_is_503(predictor):
    blocking = BlockingPredictor(predictor)
    app = create_app(blocking, ServeLimits(workers=1, queue=4, timeout_s=0.3))
    with TestClient(app) as c:
        r = c.post("/predict", content=png_bytes(make_image(0, 16)), headers={"content-type": "image/png"})
        blocking.release.set()
    assert r.status_code == 503 and "timed out" in r.json()["detail"]


def test_serve_binds_loopback_by_default():
    args = build_parser().parse_args(["serve", "model.safetensors"])
    assert args.host == "127.0.0.1" and args.port == 8000 and args.max_upload_mb == 10.0


def test_many_concurrent_requests_all_answered(predictor):
    app = create_app(predictor, ServeLimits())
    body = png_bytes(make_image(2, 24))
    with running_server(app) as url:
        codes = asyncio.run(_post_many(url, 40, body))
    assert codes == [200] * 40 and np.all(app.state.gate.active == 0)
