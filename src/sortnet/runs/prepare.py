"""`sortnet.prepare(data, **settings)`: check, decode and split the data once; `fit` may then train many times.

The bundle remembers the data settings it was made with (bundle.settings), so `fit(bundle, **settings)` can
take the same settings dict and refuse only a real conflict (a different img_size, split, ...).

Usage:
    bundle = prepare("photos/", img_size=64, val_fraction=0.2)
    clf_a = fit(bundle, model="cnn-small", epochs=5)
    clf_b = fit(bundle, model="mlp", epochs=5, seed=1)     # same split, another training seed
"""
from __future__ import annotations

from pathlib import Path

from sortnet.config import DATA_SETTINGS, TrainConfig
from sortnet.data.dataset import DataBundle
from sortnet.data.sources import load_data
from sortnet.models.registry import model_defaults
from sortnet.runs.choice import choose_for_data, photo_advice

MAX_CHECK_LINES = 8  # data-check warnings printed before training (`sortnet check` shows all)


def prepare(data: str, **settings) -> DataBundle:
    """Train/val/test data at training resolution; every TrainConfig key is accepted, the data ones are used."""
    cfg = TrainConfig.from_dict(settings)
    img_size, crop = cfg.img_size, 1.0
    choice = choose_for_data(cfg, str(data))  # validates a named model before minutes of data loading
    advice = photo_advice(cfg, choice)
    if advice and cfg.progress:  # said before minutes of decoding, so the user can stop and install
        print(advice, flush=True)
    if choice is not None:
        d = model_defaults(choice.arch, choice.pretrained)
        img_size, crop = img_size or d.img_size, d.crop  # e.g. pretrained nets: their training size and crop
    dup_groups = check_data(cfg, str(data))
    bundle = load_data(str(data), img_size=img_size, channels=cfg.channels, val_fraction=cfg.val_fraction,
                       seed=cfg.seed, data_root=cfg.data_root, download=cfg.download, progress=cfg.progress,
                       group_by=cfg.group_by, dup_groups=dup_groups, max_memory=cfg.max_memory,
                       follow_links=cfg.follow_links, crop=crop)
    bundle.data = str(data)
    bundle.settings = {k: getattr(cfg, k) for k in DATA_SETTINGS}
    bundle.choice = choice.to_dict() if choice is not None else None
    return bundle


def check_data(cfg: TrainConfig, data: str) -> dict | None:
    """Run the (cached) data check on folders and label CSVs: print its warnings, stop on fatal problems.

    Returns {path: duplicate-cluster id} for the split (None when not checked or --no-dedup-split).
    """
    from sortnet.data.builtin import builtin_name
    from sortnet.data.check import run_check
    from sortnet.data.check_report import brief_lines
    from sortnet.data.errors import DataError

    if not cfg.check or builtin_name(data) is not None or not Path(data).expanduser().exists():
        return None  # built-ins are known good; a missing path gets load_data's full error message
    result = run_check(data, progress=cfg.progress, follow_links=cfg.follow_links)
    if cfg.progress:
        for line in brief_lines(result.report)[: 1 + MAX_CHECK_LINES]:
            print(line, flush=True)  # brief_lines escapes names and paths for the terminal
    if result.fatal:
        raise DataError(f"cannot train on {data}: {'; '.join(result.fatal)} (run `sortnet check {data}` for details)")
    return result.dup_ids if cfg.dedup_split else None
