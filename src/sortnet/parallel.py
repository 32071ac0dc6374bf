"""Cores and process pools: the usable-core count and the one way sortnet fans work out to processes.

Torch-free on purpose: spawn workers re-import the module that defines their function, and a worker
that imported torch would cost seconds to start.

Usage:
    n = usable_cores()                                   # CPUs this process may run on (affinity, cgroups' cpuset)
    for result in process_map(decode_one, paths, min_items=201): ...   # spawn pool, ordered results
"""
from __future__ import annotations

import multiprocessing
import os
from typing import Callable, Iterable, Iterator


def usable_cores() -> int:
    """CPUs this process may run on (sched_getaffinity where available), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def process_map(fn: Callable, items: Iterable, *, workers: int | None = None, ordered: bool = True,
                min_items: int = 2, chunksize: int | None = None) -> Iterator:
    """fn(item) for every item: in a spawn process pool when there are >= min_items items and > 1 worker,
    else in this process. ordered=False yields results as they finish. The pool is terminated when the
    caller stops iterating (an exception, or an early break), so no worker outlives the work.
    """
    items = list(items)
    workers = workers or usable_cores()
    if len(items) < max(1, min_items) or workers <= 1:
        yield from map(fn, items)
        return
    chunk = chunksize or max(1, min(64, len(items) // (workers * 8)))
    pool = multiprocessing.get_context("spawn").Pool(workers)  # fork is unsafe once torch/tqdm threads exist
    try:
        yield from (pool.imap if ordered else pool.imap_unordered)(fn, items, chunksize=chunk)
    finally:
        pool.terminate()
        pool.join()
