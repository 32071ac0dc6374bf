"""Request memory and slow clients (issue 14, case 1): pixel budgets read from headers before decoding,
deadlines for slow headers and bodies that hold no worker slot, memory handed back, JSON never bare NaN."""
from __future__ import annotations

import io
import json
import math
import socket
import threading
import time

import pytest
from PIL import Image

from conftest import make_image
from modelkit import make_model_file, running_server

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
httpx = pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from sortnet.infer.predictor import Prediction, Predictor  # noqa: E402
from sortnet.serve.app import ServeLimits, create_app  # noqa: E402
from sortnet.serve.deadlines import server_options  # noqa: E402
from sortnet.serve.limits import release_memory  # noqa: E402


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    path = make_model_file(tmp_path_factory.mktemp("limits") / "model.safetensors", "linear", 3, 16)
    return Predictor.from_file(path, runtime="torch")


class Held:
    """A predictor whose first predict_images call consumes its images, then waits for `release`."""

    def __init__(self, inner: Predictor) -> None:
        self.inner, self.release, self.started = inner, threading.Event(), threading.Event()
        for name in ("meta", "prep", "classes", "runtime", "tta"):
            setattr(self, name, getattr(inner, name))

    def predict_images(self, images, top_k=3):
        images = list(images)
        if not self.started.is_set():
            self.started.set()
            self.release.wait(20)
        return self.inner.predict_images(images, top_k)


def test_request_pixel_budget_refuses_from_headers(predictor):
    limits = ServeLimits(max_pixels=1_000_000, max_request_pixels=2_500_000)
    one_mp = png(Image.new("L", (1000, 1000)))  # 1 MP each, a few KB on the wire
    with TestClient(create_app(predictor, limits)) as c:
        t0 = time.perf_counter()
        r = c.post("/predict", files=[("files", (f"{i}.png", one_mp, "image/png")) for i in range(16)])
        assert r.status_code == 413 and "16,000,000 pixels" in r.json()["detail"]
        assert time.perf_counter() - t0 < 2.0  # refused from the headers, nothing decoded
        r = c.post("/predict", files=[("files", (f"{i}.png", one_mp, "image/png")) for i in range(2)])
        assert r.status_code == 200 and len(r.json()["results"]) == 2
        assert c.get("/health").json()["pixels_in_flight"] == 0


def test_total_pixels_in_flight_bounded(predictor):
    held = Held(predictor)
    app = create_app(held, ServeLimits(max_pixels=1_000_000, max_total_pixels=1_500_000, workers=2, queue=2))
    one_mp = png(Image.new("L", (1000, 1000)))
    with running_server(app) as url:
        first = threading.Thread(target=lambda: httpx.post(f"{url}/predict", content=one_mp, timeout=30))
        first.start()
        assert held.started.wait(10)
        r = httpx.post(f"{url}/predict", content=one_mp, timeout=5)  # 1 MP + 1 MP > 1.5 MP in flight
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        small = httpx.post(f"{url}/predict", content=png(make_image(0, 16)), timeout=5)
        held.release.set()
        first.join(20)
        assert small.status_code == 200  # small requests still fit beside the held one
        assert httpx.post(f"{url}/predict", content=one_mp, timeout=5).status_code == 200
        assert app.state.budget.used == 0 and app.state.gate.active == 0


def _stall(url: str, payload: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(payload)
    return sock


def _wait_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    t0, got = time.perf_counter(), b""
    sock.settimeout(limit)
    try:
        while chunk := sock.recv(4096):
            got += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return got, time.perf_counter() - t0


def test_slow_body_gets_408_without_holding_a_worker(predictor):
    limits = ServeLimits(workers=1, queue=0, body_timeout_s=1.0, header_timeout_s=5.0)
    app = create_app(predictor, limits)
    body = png(make_image(1, 16))
    with running_server(app, **server_options(limits)) as url:
        slow = _stall(url, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                           b"Content-Length: 5000\r\n\r\n" + body[:20])
        time.sleep(0.2)
        r = httpx.post(f"{url}/predict", content=body, timeout=5)  # capacity 1: a held slot would make this 503
        assert r.status_code == 200 and app.state.gate.active == 0
        got, seconds = _wait_closed(slow, 5)
        slow.close()
    assert got.startswith(b"HTTP/1.1 408") and seconds < 3


def test_slow_headers_are_cut_off(predictor):
    limits = ServeLimits(header_timeout_s=0.5)
    with running_server(create_app(predictor, limits), **server_options(limits)) as url:
        sock = _stall(url, b"POST /predict HTTP/1.1\r\nHost: x\r\n")  # headers never finish
        got, seconds = _wait_closed(sock, 5)
        sock.close()
        assert got == b"" and seconds < 2.5
        idle = _stall(url, b"")  # a connection that sends nothing at all
        got, seconds = _wait_closed(idle, 5)
        idle.close()
        assert got == b"" and seconds < 2.5
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200  # normal clients unaffected


class NanPredictor(Held):
    def predict_images(self, images, top_k=3):
        return [Prediction(None, [("apple", math.nan), ("banana", math.inf)]) for _ in images]


def test_json_responses_never_hold_bare_nan(predictor):
    with TestClient(create_app(NanPredictor(predictor), ServeLimits())) as c:
        r = c.post("/predict", content=png(make_image(0, 16)), headers={"content-type": "image/png"})

    def refuse(name):
        raise ValueError(f"bare {name} in JSON")

    assert r.status_code == 200
    assert [p["probability"] for p in json.loads(r.text, parse_constant=refuse)["predictions"]] == [None, None]


def test_release_memory_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim exists only in glibc")
    assert release_memory() is True
