"""`sortnet serve` under two attacks on loopback: server RSS before / peak / after, and whether others get served.

1. Multi-image: R concurrent requests, each 16 PNGs of 6300 x 6300 px (each image just under the 40 MP
   per-image limit, ~0.1 MB compressed: a small request that asks for ~1.9 GB of decoded RGB pixels).
   Then R concurrent requests of ONE such image (allowed) to see whether memory goes back afterwards.
2. Slow clients: S connections trickle their headers one byte a second, S more send headers and then
   trickle the body; meanwhile ordinary requests are timed. Reports their status codes and latency, and
   how many slow connections the server still holds after the deadlines.

Starts the real CLI (`sortnet serve MODEL --host 127.0.0.1`) in a subprocess; `--src DIR` puts another
sortnet source tree first on PYTHONPATH (e.g. an older checkout, to measure before/after a change).
RSS is read from /proc/<pid>/status (VmRSS now, VmHWM peak). Only 127.0.0.1 is ever contacted.

Usage:
    python benchmarks/bench_attack.py [--model M] [--src DIR] [--requests 2] [--slow 40] [--json out.json]
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
    from sortnet.models.registry import create_model

    prep = Preprocessing(img_size=28, channels=1, mean=(0.5,), std=(0.25,))
    model = create_model("linear", 1, 3, 28, prep.mean, prep.std)
    meta = {"classes": ["a", "b", "c"], "preprocessing": prep.to_dict(), "arch": "linear"}
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


def multi_image_attack(url: str, pid: int, requests: int) -> dict:
    big = big_png()
    out = {"png_bytes_each": len(big), "before": proc_status(pid)}
    codes, seconds = asyncio.run(post_images(url, [big] * 16, requests))
    time.sleep(1.0)
    out["attack"] = {"codes": codes, "seconds": seconds, "after": proc_status(pid)}
    codes, seconds = asyncio.run(post_images(url, [big], requests))  # allowed: one big image per request
    time.sleep(1.0)
    out["one_big_image_each"] = {"codes": codes, "seconds": seconds, "after": proc_status(pid)}
    return out


async def slow_connection(port: int, head: bytes, trickle: bytes, closed: list, seconds: float) -> None:
    """Send `head` at once, then `trickle` one byte a second; records whether the server closed first."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(head)
    t0 = time.monotonic()
    try:
        for b in trickle:
            if time.monotonic() - t0 > seconds:
                break
            writer.write(bytes([b]))
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1024), 1.0) == b"" or reader.at_eof():
                    closed.append(round(time.monotonic() - t0, 1))
                    return
            except asyncio.TimeoutError:
                pass  # still open, nothing sent back yet
        if reader.at_eof():
            closed.append(round(time.monotonic() - t0, 1))
    except (ConnectionError, OSError):
        closed.append(round(time.monotonic() - t0, 1))
    finally:
        writer.close()


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


def slow_client_attack(url: str, port: int, pid: int, slow: int, seconds: float) -> dict:
    head_only = b"POST /predict HTTP/1.1\r\nHost: x\r\n"
    header_trickle = b"X-Slow: " + b"a" * 200
    body_head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
                 + small_png()[:40])
    closed_h: list = []
    closed_b: list = []

    async def run():
        tasks = [slow_connection(port, head_only, header_trickle, closed_h, seconds) for _ in range(slow)]
        tasks += [slow_connection(port, body_head, b"x" * 200, closed_b, seconds) for _ in range(slow)]
        normal = asyncio.ensure_future(timed_requests(url, 10, 2.0))
        await asyncio.gather(*tasks)
        return await normal

    before = proc_status(pid)
    normal = asyncio.run(run())
    return {"slow_each_kind": slow, "seconds": seconds, "before": before, "after": proc_status(pid),
            "slow_header_conns_closed_by_server": len(closed_h), "closed_after_s_headers": sorted(closed_h)[:3],
            "slow_body_conns_closed_by_server": len(closed_b), "closed_after_s_bodies": sorted(closed_b)[:3],
            "normal_requests": normal}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model file (default: a tiny generated one)")
    ap.add_argument("--src", help="sortnet source tree to run the server from (PYTHONPATH), e.g. an old checkout")
    ap.add_argument("--requests", type=int, default=2, help="concurrent attack requests [default: 2]")
    ap.add_argument("--slow", type=int, default=40, help="slow connections of each kind [default: 40]")
    ap.add_argument("--seconds", type=float, default=30.0, help="how long slow clients keep trickling [30]")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else tiny_model(Path(tmp))
        port = free_port()
        server = start_server(model, port, args.src)
        url = f"http://{HOST}:{port}"
        try:
            results = {"src": args.src or "this checkout", "idle": proc_status(server.pid)}
            results["multi_image"] = multi_image_attack(url, server.pid, args.requests)
            results["slow_clients"] = slow_client_attack(url, port, server.pid, args.slow, args.seconds)
        finally:
            server.terminate()
            server.wait(20)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
