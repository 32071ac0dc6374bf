"""`sortnet serve` under two attacks on loopback: server RSS before / peak / after, and whether others get served.

1. Multi-image: R concurrent requests, each 16 PNGs of 6300 x 6300 px (each image just under the 40 MP
   per-image limit, ~0.1 MB compressed: a small request that asks for ~1.9 GB of decoded RGB pixels).
   Then R concurrent requests of ONE such image (allowed) to see whether memory goes back afterwards.
2. Slow clients (on a fresh server): S connections trickle their headers one byte a second, S more send
   headers and then trickle the body; meanwhile ordinary requests are timed. Reports their status codes and
   latency, and when the server answered or closed the slow connections (never: it still holds them).

Starts the real CLI (`sortnet serve MODEL --host 127.0.0.1`) in a subprocess; `--src DIR` puts another
sortnet source tree first on PYTHONPATH (e.g. an older checkout, to measure before/after a change).
RSS is read from /proc/<pid>/status (VmRSS now, VmHWM peak). Only 127.0.0.1 is ever contacted.

Usage:
    python benchmarks/bench_attack.py [--model M] [--src DIR] [--requests 2] [--slow 80] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

HOST = "127.0.0.1"  # never anything else: this is a local attack on our own server
SIDE = 6300  # 6300^2 = 39.7 MP: just under the default 40 MP per-image limit


def proc_status(pid: int) -> dict:
    """VmRSS and VmHWM of a process, in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(line.split()[1]) / 1024, 1)
    return out


def big_png() -> bytes:
    """A 6300 x 6300 RGB PNG of stripes: ~0.1 MB on the wire, 119 MB decoded."""
    img = Image.new("RGB", (SIDE, SIDE), (200, 40, 40))
    img.paste((40, 40, 200), (0, 0, SIDE, SIDE // 2))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=9)
    return buf.getvalue()


def small_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (28, 28), 128).save(buf, format="PNG")
    return buf.getvalue()


def tiny_model(folder: Path) -> Path:
    """A 28 px grey 3-class linear model file (random init: the attack does not care what it predicts)."""
    from sortnet.data.preprocess import Preprocessing
    from sortnet.modelfile import save_model
    from sortnet.modelmeta import ModelMeta
    from sortnet.models.registry import create_model

    prep = Preprocessing(img_size=28, channels=1, mean=(0.5,), std=(0.25,))
    model = create_model("linear", 1, 3, 28, prep.mean, prep.std)
    meta = ModelMeta(classes=["a", "b", "c"], preprocessing=prep, arch="linear")
    return save_model(folder / "model.safetensors", model.eval(), meta)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(model: Path, port: int, src: str | None) -> subprocess.Popen:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = str(Path(src).resolve())
    exe = Path(sys.executable).parent / "sortnet"
    proc = subprocess.Popen([str(exe), "serve", str(model), "--host", HOST, "--port", str(port), "--workers", "2",
                             "--runtime", "torch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start within 90 s")


async def post_images(url: str, images: list[bytes], n: int) -> tuple[list[int], float]:
    files = [("files", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as c:
        rs = await asyncio.gather(*[c.post(f"{url}/predict", files=files) for _ in range(n)],
                                  return_exceptions=True)
    codes = [r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in rs]
    return codes, round(time.perf_counter() - t0, 2)


def multi_image_attack(url: str, pid: int, requests: int, settle: float) -> dict:
    """RSS 1 s after the answers and again `settle` s later (work abandoned at a timeout may still run)."""
    big = big_png()
    out = {"png_bytes_each": len(big), "before": proc_status(pid)}
    for name, images in (("attack", [big] * 16), ("one_big_image_each", [big])):  # the second is allowed
        codes, seconds = asyncio.run(post_images(url, images, requests))
        time.sleep(1.0)
        out[name] = {"codes": codes, "seconds": seconds, "after_1s": proc_status(pid)}
        time.sleep(settle)
        out[name][f"after_{settle:g}s"] = proc_status(pid)
    return out


async def slow_connection(port: int, head: bytes, trickle: bytes, seconds: float) -> dict:
    """Send `head` at once, then `trickle` one byte a second for up to `seconds`.

    Returns when the server answered (status line) and when it closed the connection (None: still open).
    """
    out: dict = {"status": None, "answered_s": None, "closed_s": None}
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(head)
    t0 = time.monotonic()

    def seen(data: bytes) -> None:
        if data and out["status"] is None:
            out["status"], out["answered_s"] = data.split(b"\r\n")[0].decode(errors="replace"), \
                round(time.monotonic() - t0, 1)
        if not data:
            out["closed_s"] = round(time.monotonic() - t0, 1)

    try:
        for b in trickle:
            if time.monotonic() - t0 > seconds or out["closed_s"] is not None:
                break
            writer.write(bytes([b]))
            await writer.drain()
            try:
                seen(await asyncio.wait_for(reader.read(1024), 1.0))
            except asyncio.TimeoutError:
                pass  # still open, nothing sent back yet
    except (ConnectionError, OSError):
        out["closed_s"] = out["closed_s"] or round(time.monotonic() - t0, 1)
    finally:
        writer.close()
    return out


async def timed_requests(url: str, n: int, delay: float) -> list[tuple]:
    out = []
    async with httpx.AsyncClient(timeout=30) as c:
        await asyncio.sleep(delay)
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                r = await c.post(f"{url}/predict", content=small_png(), headers={"content-type": "image/png"})
                out.append((r.status_code, round((time.perf_counter() - t0) * 1000, 1)))
            except httpx.HTTPError as e:
                out.append((type(e).__name__, round((time.perf_counter() - t0) * 1000, 1)))
            await asyncio.sleep(0.5)
    return out


def _summary(conns: list[dict]) -> dict:
    closed = sorted(c["closed_s"] for c in conns if c["closed_s"] is not None)
    answered = sorted(c["answered_s"] for c in conns if c["answered_s"] is not None)
    statuses: dict = {}
    for c in conns:
        statuses[c["status"] or "no answer"] = statuses.get(c["status"] or "no answer", 0) + 1
    return {"closed_by_server": len(closed), "closed_after_s_median": closed[len(closed) // 2] if closed else None,
            "answered": len(answered), "answered_after_s_median": answered[len(answered) // 2] if answered else None,
            "answers": statuses}


def slow_client_attack(url: str, port: int, pid: int, slow: int, seconds: float) -> dict:
    head_only = b"POST /predict HTTP/1.1\r\nHost: x\r\n"
    header_trickle = b"X-Slow: " + b"a" * 200
    body_head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
                 + small_png()[:40])

    async def run():
        slow_h = [slow_connection(port, head_only, header_trickle, seconds) for _ in range(slow)]
        slow_b = [slow_connection(port, body_head, b"x" * 200, seconds) for _ in range(slow)]
        normal = asyncio.ensure_future(timed_requests(url, 10, 2.0))
        results = await asyncio.gather(*slow_h, *slow_b)
        return results[:slow], results[slow:], await normal

    before = proc_status(pid)
    heads, bodies, normal = asyncio.run(run())
    return {"slow_each_kind": slow, "seconds": seconds, "before": before, "after": proc_status(pid),
            "slow_headers": _summary(heads), "slow_bodies": _summary(bodies), "normal_requests": normal}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model file (default: a tiny generated one)")
    ap.add_argument("--src", help="sortnet source tree to run the server from (PYTHONPATH), e.g. an old checkout")
    ap.add_argument("--requests", type=int, default=2, help="concurrent attack requests [default: 2]")
    ap.add_argument("--slow", type=int, default=80, help="slow connections of each kind; more than the server's "
                                                         "2 workers + 64 queue slots [default: 80]")
    ap.add_argument("--settle", type=float, default=20.0, help="seconds before the second RSS reading [20]")
    ap.add_argument("--seconds", type=float, default=30.0, help="how long slow clients keep trickling [30]")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else tiny_model(Path(tmp))
        results = {"src": args.src or "this checkout"}
        for name in ("multi_image", "slow_clients"):  # a fresh server for each: no backlog carried over
            port = free_port()
            server = start_server(model, port, args.src)
            url = f"http://{HOST}:{port}"
            try:
                results[name] = {"idle": proc_status(server.pid)}
                if name == "multi_image":
                    results[name].update(multi_image_attack(url, server.pid, args.requests, args.settle))
                else:
                    results[name].update(slow_client_attack(url, port, server.pid, args.slow, args.seconds))
            finally:
                server.terminate()
                server.wait(20)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
