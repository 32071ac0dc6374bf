"""What verifying the ingest cache costs (issue 18): the SHA-256 of every block, checked once per ingest() call.

Usage:
    sortnet datasets --export fashion-mnist --split train --limit 10000 --out /tmp/fm10k
    .venv/bin/python benchmarks/bench_ingest_verify.py --data /tmp/fm10k --sizes 28x1,112x3

For each size (img_size x channels): the first ingest (decode + seal), a reused ingest (verify; the fast path
of every later run), the verification alone, the reuse without it (state read + view: the old fast path), the
sealing alone, and one epoch's reads of the cache in shuffled batches (what training streams), medians of
--repeats. Prints one JSON object; the cache goes to a fresh folder under --cache.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from sortnet.data.ingest import _hash_blocks, _load_state, block_rows, ingest
from sortnet.data.mapped import MappedRows
from sortnet.data.preprocess import Preprocessing


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def one_size(paths: list[str], size: int, channels: int, cache: Path, repeats: int) -> dict:
    prep = Preprocessing(img_size=size, channels=channels)
    t0 = time.perf_counter()
    first = ingest(paths, prep, cache_dir=cache)
    cold = time.perf_counter() - t0
    n, row_bytes = len(paths), channels * size * size
    per_block = block_rows(row_bytes)
    blocks = list(range(-(-n // per_block)))
    file = first.folder / "images.u8"
    shape = (n, channels, size, size)
    order = np.random.default_rng(0).permutation(n)

    def epoch() -> None:
        rows = MappedRows(file, shape)
        for i in range(0, n, 256):
            rows.take(np.sort(order[i:i + 256]))

    return {"images": n, "img_size": size, "channels": channels, "cache_mb": round(n * row_bytes / 1e6, 1),
            "blocks": len(blocks), "first_ingest_s": round(cold, 3),
            "reuse_s": round(median_seconds(lambda: ingest(paths, prep, cache_dir=cache), repeats), 4),
            "verify_only_s": round(median_seconds(lambda: _hash_blocks(file, row_bytes, per_block, n, blocks),
                                                  repeats), 4),
            "reuse_without_verify_s": round(median_seconds(
                lambda: (_load_state(first.folder, n, per_block), MappedRows(file, shape)), repeats), 4),
            "epoch_read_s": round(median_seconds(epoch, repeats), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--sizes", default="28x1,112x3")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cache", default="/tmp/sortnet-bench-ingest-verify")
    args = ap.parse_args()
    paths = sorted(str(p) for p in Path(args.data).rglob("*.png"))
    results = []
    for spec in args.sizes.split(","):
        size, channels = (int(v) for v in spec.split("x"))
        cache = Path(args.cache) / spec
        shutil.rmtree(cache, ignore_errors=True)
        results.append(one_size(paths, size, channels, cache, args.repeats))
        shutil.rmtree(cache, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
