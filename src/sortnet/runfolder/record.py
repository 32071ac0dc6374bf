"""A run folder's records: run.json (data, settings, recipe: what --resume needs) and metrics.json (history).

One writer and two readers: `read_run_file` for --resume (checked; ConfigError with what to do) and
`read_run_records` for the report and other lenient readers ({} for what is missing or unreadable).

Usage:
    write_run_file(run_dir, bundle.data, cfg.to_dict(), recipe.to_dict())
    saved = read_run_file(run_dir)                  # {"data": str, "config": dict, "recipe": dict}
    records = read_run_records(run_dir)             # {"run": {...} or {}, "metrics": {...} or {}}
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from sortnet.atomic import atomic_write_text
from sortnet.config import ConfigError
from sortnet.jsonsafe import dumps
from sortnet.runfolder.layout import METRICS_FILE, RUN_FILE

_RUN_FILE_SHAPE = {"data": str, "config": dict, "recipe": dict}


def write_run_file(run_dir: str | os.PathLike, data: str, config: dict, recipe: dict) -> None:
    payload = {"data": data, "config": config, "recipe": recipe}
    atomic_write_text(Path(run_dir) / RUN_FILE, dumps(payload, indent=2))


def write_metrics_file(run_dir: str | os.PathLike, metrics: dict, default=None) -> None:
    """default: json's hook for values it cannot write (e.g. numpy scalars)."""
    atomic_write_text(Path(run_dir) / METRICS_FILE, dumps(metrics, indent=2, default=default))


def read_run_file(run_dir: str | os.PathLike) -> dict:
    """run.json of a run folder, checked for its shape: {"data": str, "config": dict, "recipe": dict}."""
    run_file = Path(run_dir) / RUN_FILE
    if not run_file.is_file():
        raise ConfigError(f"{run_dir} is not a sortnet run folder (no {RUN_FILE}); give the folder `train --out` made")
    try:
        saved = json.loads(run_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{run_file} is unreadable or not valid JSON ({e}); this run cannot be resumed, "
                          "start a new one") from e
    if not isinstance(saved, dict) or any(not isinstance(saved.get(k), t) for k, t in _RUN_FILE_SHAPE.items()):
        raise ConfigError(f"{run_file} is not a sortnet run file (needs data, config and recipe); this run "
                          "cannot be resumed, start a new one")
    return saved


def read_run_records(run_dir: str | os.PathLike | None) -> dict:
    """{"run": run.json, "metrics": metrics.json} of a run folder; {} for each one missing or unreadable."""
    out: dict = {"run": {}, "metrics": {}}
    if run_dir is None:
        return out
    for key, name in (("run", RUN_FILE), ("metrics", METRICS_FILE)):
        try:
            value = json.loads((Path(run_dir) / name).read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        out[key] = value if isinstance(value, dict) else {}
    return out
