"""`sortnet.train(data)`: `prepare` + `fit` into a run folder; or continue an interrupted run exactly.

Usage:
    clf = train("photos/", epochs=10)                  # a Classifier; clf.run_dir holds model.safetensors
    clf = train(resume="runs/photos")                  # continue an interrupted run exactly
"""
from __future__ import annotations

import re
from pathlib import Path

from sortnet.config import ConfigError, TrainConfig
from sortnet.models.registry import validate_arch
from sortnet.training.callbacks import Callback
from sortnet.training.checkpoint import CHECKPOINT_NAME
from sortnet.training.finish import MODEL_FILE
from sortnet.training.fit import fit, read_run_file
from sortnet.training.prepare import prepare

__all__ = ["train", "default_run_dir", "MODEL_FILE"]


def default_run_dir(data: str, root: str = "runs") -> Path:
    """runs/<data name>, or runs/<data name>-2, -3 ... when taken (never overwrites a run)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(str(data).rstrip("/")).name or "data").strip("-") or "data"
    candidate, n = Path(root) / name, 2
    while candidate.exists():
        candidate, n = Path(root) / f"{name}-{n}", n + 1
    return candidate


def train(data: str | None = None, *, out: str | None = None, resume: str | None = None,
          callbacks: list[Callback] | None = None, **settings):
    """Train a classifier on a folder or built-in dataset; see TrainConfig for every setting."""
    if resume is not None:
        saved = read_run_file(Path(resume))
        overrides = {k: v for k, v in settings.items() if k in ("progress", "device")}
        bundle = prepare(saved["data"], **dict(saved["config"], **overrides))
        return fit(bundle, out=resume, resume=True, callbacks=callbacks, **overrides)
    if data is None:
        raise ConfigError("train needs DATA (a folder or a built-in dataset name) or resume=RUN_DIR")
    cfg = TrainConfig.from_dict(settings)  # bad settings fail before any data is read
    if cfg.model != "auto":
        validate_arch(cfg.model)
    run_dir = Path(out) if out else default_run_dir(data)
    if (run_dir / CHECKPOINT_NAME).exists() or (run_dir / MODEL_FILE).exists():
        raise ConfigError(f"{run_dir} already holds a run; use --resume {run_dir} or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    bundle = prepare(data, **settings)
    return fit(bundle, out=run_dir, callbacks=callbacks, **settings)
