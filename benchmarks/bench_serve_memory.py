"""`sortnet serve` memory after bursts of large uploads: does freed memory go back to the OS?

B bursts of N concurrent `POST /predict`, each one PNG of random pixels (~5 MB on the wire, ~1.7 MP), against
the real CLI (`sortnet serve MODEL --host 127.0.0.1`). RSS (psutil) of the server: idle, after each burst,
its peak, and `--settle` seconds after the last burst. Variants run one after the other on the same machine:
`--src DIR` puts another sortnet source tree first (e.g. main, for before/after), `--env K=V` sets an
environment variable of the server (e.g. MALLOC_ARENA_MAX=2). Only 127.0.0.1 is ever contacted.

Usage (from benchmarks/):
    python bench_serve_memory.py [--bursts 13] [--concurrent 50] [--src /work/main/src] [--env K=V] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

from bench_attack import HOST, free_port, tiny_model

SIDE = 1300  # 1300 x 1300 RGB noise: ~5.1 MB as PNG, 1.69 MP (under serve's 4 MP "big request" line)


def noise_png(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def start(model: Path, port: int, src: str | None, env_pairs: list[str]) -> psutil.Popen:
    env = dict(os.environ, **dict(p.split("=", 1) for p in env_pairs))
    if src:
        env["PYTHONPATH"] = str(Path(src).resolve())
    exe = Path(os.sys.executable).parent / "sortnet"
    proc = psutil.Popen([str(exe), "serve", str(model), "--host", HOST, "--port", str(port), "--workers", "2",
                         "--runtime", "torch"], stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"), env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start within 120 s")


class PeakWatcher(threading.Thread):
    """Samples the server's RSS every 50 ms; .peak in MB."""

    def __init__(self, proc: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.proc, self.peak, self.stop = proc, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_mb(self.proc))
            time.sleep(0.05)


def rss_mb(proc: psutil.Process) -> float:
    return round(proc.memory_info().rss / 1e6, 1)


async def burst(url: str, png: bytes, n: int) -> dict:
    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=n)) as c:
        rs = await asyncio.gather(*[c.post(f"{url}/predict", files=[("files", ("x.png", png, "image/png"))])
                                    for _ in range(n)], return_exceptions=True)
    codes: dict = {}
    for r in rs:
        key = str(r.status_code) if isinstance(r, httpx.Response) else type(r).__name__
        codes[key] = codes.get(key, 0) + 1
    return {"codes": codes, "seconds": round(time.perf_counter() - t0, 2)}


def measure(src: str | None, env_pairs: list[str], bursts: int, n: int, settle: float) -> dict:
    png = noise_png()
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_model(Path(tmp))
        port = free_port()
        proc = start(model, port, src, env_pairs)
        try:
            watcher = PeakWatcher(proc)
            watcher.start()
            out = {"src": src or "this checkout", "env": env_pairs, "png_mb": round(len(png) / 1e6, 2),
                   "idle_mb": rss_mb(proc), "bursts": []}
            for _ in range(bursts):
                result = asyncio.run(burst(f"http://{HOST}:{port}", png, n))
                time.sleep(0.5)
                out["bursts"].append({**result, "rss_mb": rss_mb(proc)})
            time.sleep(settle)
            watcher.stop.set()
            out.update(peak_mb=watcher.peak, settled_mb=rss_mb(proc), settle_s=settle)
        finally:
            proc.terminate()
            proc.wait(30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bursts", type=int, default=13)
    ap.add_argument("--concurrent", type=int, default=50)
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--src", help="sortnet source tree to put first on PYTHONPATH (before/after comparisons)")
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="server environment variable")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    out = measure(args.src, args.env, args.bursts, args.concurrent, args.settle)
    after = [b["rss_mb"] for b in out["bursts"]]
    print(f"{out['src']} {' '.join(out['env'])}: idle {out['idle_mb']} MB; after bursts {after[0]} .. {max(after)} "
          f"(last {after[-1]}) MB; peak {out['peak_mb']} MB; {out['settle_s']:g} s later {out['settled_mb']} MB; "
          f"codes {out['bursts'][-1]['codes']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
