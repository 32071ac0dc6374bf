"""`sortnet serve` under load on loopback: N concurrent clients for T seconds, then a burst at 10x capacity.

Starts the real CLI (`sortnet serve MODEL --port P`, bound to 127.0.0.1) in a subprocess, posts one
Fashion-MNIST-like PNG per request (multipart field `file`) with httpx/asyncio, and reports requests/s,
latency p50/p99, errors, and the server's RSS before/after. The burst fires 10 x (workers + queue)
requests at once and reports how many got 200 vs 503 and how fast the 503s came back.
Bounded by design: only 127.0.0.1, fixed duration, fixed request count for the burst.

Usage:
    python benchmarks/bench_serve.py MODEL [--clients 8] [--seconds 30] [--port 8765] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

HOST = "127.0.0.1"  # never anything else: this is a local load test


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def sample_png(size: int = 28) -> bytes:
    rng = np.random.default_rng(0)
    img = Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8), "L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def start_server(model: str, port: int, extra: list[str]) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "sortnet"
    proc = subprocess.Popen([str(exe), "serve", model, "--host", HOST, "--port", str(port), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


def multipart_request(port: int, body: bytes) -> bytes:
    """A complete HTTP/1.1 keep-alive POST /predict with the image in multipart field `file`."""
    b = "sortnetbench7f3a"
    part = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + body + f"\r\n--{b}--\r\n".encode()
    head = (f"POST /predict HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: multipart/form-data; boundary={b}"
            f"\r\nContent-Length: {len(part)}\r\n\r\n").encode()
    return head + part


class Conn:
    """One keep-alive connection speaking just enough HTTP/1.1: a raw asyncio client costs the shared
    2 cores far less per request than httpx, so the numbers measure the server, not the load generator."""

    def __init__(self, port: int) -> None:
        self.port, self.reader, self.writer = port, None, None

    async def post(self, request: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.writer.write(request)
        status = int((await self.reader.readline()).split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode().partition(":")
            length = int(value) if key.lower() == "content-length" else length
            close = close or (key.lower() == "connection" and "close" in value.lower())
        await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _timed_post(conn: Conn, request: bytes) -> tuple[int | str, float]:
    t0 = time.perf_counter()
    try:
        code = await conn.post(request)
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as e:
        conn.close()
        code = type(e).__name__
    return code, (time.perf_counter() - t0) * 1000


async def sustained(port: int, clients: int, seconds: float, body: bytes) -> dict:
    request, results = multipart_request(port, body), []

    async def client(stop: float) -> None:
        conn = Conn(port)
        while time.monotonic() < stop:
            results.append(await _timed_post(conn, request))
        conn.close()

    t0 = time.monotonic()
    await asyncio.gather(*[client(t0 + seconds) for _ in range(clients)])
    elapsed = time.monotonic() - t0
    lat = [ms for _, ms in results]
    ok = sum(1 for code, _ in results if code == 200)
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": len(results), "ok": ok,
            "errors": len(results) - ok, "requests_per_s": round(len(results) / elapsed, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2)}


async def burst(port: int, n: int, body: bytes) -> dict:
    """n connections opened first, then n requests sent at once."""
    request, conns = multipart_request(port, body), [Conn(port) for _ in range(n)]
    for c in conns:
        c.reader, c.writer = await asyncio.open_connection(HOST, port)
    t0 = time.monotonic()
    res = await asyncio.gather(*[_timed_post(c, request) for c in conns])
    elapsed = time.monotonic() - t0
    for c in conns:
        c.close()
    by: dict[str, list[float]] = {}
    for code, ms in res:
        by.setdefault(str(code), []).append(ms)
    return {"requests": n, "seconds": round(elapsed, 2),
            "by_status": {k: {"count": len(v), "p50_ms": round(float(np.percentile(v, 50)), 1),
                              "max_ms": round(max(v), 1)} for k, v in sorted(by.items())}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="model file or .onnx export to serve")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--queue", type=int, default=64, help="server --queue (capacity = workers + queue)")
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args()
    body = sample_png()
    proc = start_server(args.model, args.port, ["--queue", str(args.queue)])
    try:
        asyncio.run(sustained(args.port, 2, 2, body))  # warm-up
        info = httpx.get(f"http://{HOST}:{args.port}/model").json()
        out = {"date": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(), "model": info["arch"],
               "img_size": info["input"]["img_size"], "runtime": info["runtime"], "rss_before_mb": rss_mb(proc.pid),
               "loadavg_start": os.getloadavg()}
        out["sustained"] = asyncio.run(sustained(args.port, args.clients, args.seconds, body))
        out["rss_after_sustained_mb"] = rss_mb(proc.pid)
        capacity = info["limits"]["workers"] + info["limits"]["queue"]
        out["burst"] = asyncio.run(burst(args.port, 10 * capacity, body))
        out["rss_after_burst_mb"] = rss_mb(proc.pid)
        out["loadavg_end"] = os.getloadavg()
        out["healthy_after"] = httpx.get(f"http://{HOST}:{args.port}/health").json()
    finally:
        proc.terminate()
        proc.wait(10)
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
