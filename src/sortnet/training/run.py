"""`sortnet.train(...)`: data -> recipe -> model -> Trainer -> model file, metrics and a report.

Usage:
    clf = train("photos/", epochs=10)                  # a Classifier; clf.run_dir holds model.safetensors
    clf = train(resume="runs/photos")                  # continue an interrupted run exactly
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import torch

from sortnet.atomic import atomic_write_text
from sortnet.config import ConfigError, TrainConfig, parse_duration
from sortnet.data.dataset import DataBundle
from sortnet.data.sources import load_data
from sortnet.device import resolve_device, resolve_precision, use_all_cores
from sortnet.infer.batch import predict_logits
from sortnet.modelfile import save_model
from sortnet.models.registry import create_model, validate_arch
from sortnet.training.budget import TimeBudget, plan_steps
from sortnet.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from sortnet.training.events import CheckpointSaver, ProgressBar, TensorBoardLogger
from sortnet.training.recipe import Recipe, resolve_recipe
from sortnet.training.trainer import Trainer, eval_batch_size, resolve_balance

RUN_FILE = "run.json"
MODEL_FILE = "model.safetensors"
WHITEN_SAMPLE = 5000  # images used to estimate patch statistics for whitening init
WHITEN_SAMPLE_BYTES = 192 << 20  # and at most this many uint8 bytes of them (bounds RAM for large images)
MAX_CHECK_LINES = 8  # data-check warnings printed at the start of training (`sortnet check` shows all)


def default_run_dir(data: str, root: str = "runs") -> Path:
    """runs/<data name>, or runs/<data name>-2, -3 ... when taken (never overwrites a run)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(str(data).rstrip("/")).name or "data").strip("-") or "data"
    candidate, n = Path(root) / name, 2
    while candidate.exists():
        candidate, n = Path(root) / f"{name}-{n}", n + 1
    return candidate


def _log(cfg: TrainConfig, msg: str) -> None:
    if cfg.progress:
        print(msg, flush=True)


def _build_trainer(model, bundle: DataBundle, recipe: Recipe, cfg: TrainConfig, device, dtype, run_dir: Path):
    callbacks = [ProgressBar(cfg.progress), TensorBoardLogger(run_dir / "tensorboard"), CheckpointSaver(run_dir)]
    balance, _ = resolve_balance(cfg.balance, list(bundle.train.class_counts().values()))
    return Trainer(model, bundle.train, bundle.val, recipe, device=device, dtype=dtype, seed=cfg.seed,
                   callbacks=callbacks, balance=balance, compile=cfg.compile)


def _check_data(cfg: TrainConfig, data: str) -> dict | None:
    """Run the (cached) data check on folders and label CSVs: print its warnings, stop on fatal problems.

    Returns {path: duplicate-cluster id} for the split (None when not checked or --no-dedup-split).
    """
    from sortnet.data.builtin import builtin_name
    from sortnet.data.check import run_check
    from sortnet.data.check_report import brief_lines
    from sortnet.data.errors import DataError

    is_builtin = builtin_name(str(data)) is not None and not any(sep in str(data) for sep in ("/", "\\"))
    if not cfg.check or is_builtin or not Path(data).expanduser().exists():
        return None  # built-ins are known good; a missing path gets load_data's full error message
    result = run_check(data, progress=cfg.progress)
    for line in brief_lines(result.report)[: 1 + MAX_CHECK_LINES]:
        _log(cfg, line)
    if result.fatal:
        raise DataError(f"cannot train on {data}: {'; '.join(result.fatal)} (run `sortnet check {data}` for details)")
    return result.dup_ids if cfg.dedup_split else None


def _prepare(cfg: TrainConfig, data: str, recipe_dict: dict | None = None):
    use_all_cores()
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    dtype = resolve_precision(cfg.precision, device)
    dup_groups = _check_data(cfg, data)
    bundle = load_data(data, img_size=cfg.img_size, channels=cfg.channels, val_fraction=cfg.val_fraction,
                       seed=cfg.seed, data_root=cfg.data_root, download=cfg.download, progress=cfg.progress,
                       group_by=cfg.group_by, dup_groups=dup_groups, max_memory=cfg.max_memory)
    balance, why = resolve_balance(cfg.balance, list(bundle.train.class_counts().values()))
    bundle.notes.append(f"balance: {balance} ({why})")
    recipe = Recipe(**recipe_dict) if recipe_dict else resolve_recipe(cfg, bundle, device)
    prep = bundle.preprocessing
    model = create_model(recipe.model, prep.channels, len(bundle.classes), prep.img_size, prep.mean, prep.std)
    row_bytes = int(np.prod(bundle.train.images.shape[1:]))
    sample = min(WHITEN_SAMPLE, max(256, WHITEN_SAMPLE_BYTES // row_bytes))  # 224 px photos: ~1,300 images
    model.init_from_data(torch.as_tensor(np.asarray(bundle.train.images[:sample])))
    return device, dtype, bundle, recipe, model


def _write_run_file(run_dir: Path, data: str, cfg: TrainConfig, recipe: Recipe) -> None:
    payload = {"data": data, "config": cfg.to_dict(), "recipe": recipe.to_dict()}
    atomic_write_text(run_dir / RUN_FILE, json.dumps(payload, indent=2))


def train(data: str | None = None, *, out: str | None = None, resume: str | None = None, **settings):
    """Train a classifier on a folder or built-in dataset; see TrainConfig for every setting."""
    from sortnet.classifier import Classifier

    if resume is not None:
        return _resume(Path(resume), settings)
    if data is None:
        raise ConfigError("train needs DATA (a folder or a built-in dataset name) or resume=RUN_DIR")
    if "time_budget" in settings:
        settings["time_budget"] = parse_duration(settings["time_budget"])
    cfg = TrainConfig.from_dict(settings)
    if cfg.model != "auto":
        validate_arch(cfg.model)  # fail before minutes of data loading
    run_dir = Path(out) if out else default_run_dir(data)
    if (run_dir / CHECKPOINT_NAME).exists() or (run_dir / MODEL_FILE).exists():
        raise ConfigError(f"{run_dir} already holds a run; use --resume {run_dir} or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    device, dtype, bundle, recipe, model = _prepare(cfg, data)
    trainer = _build_trainer(model, bundle, recipe, cfg, device, dtype, run_dir)
    if cfg.time_budget:
        steps, per_step = plan_steps(trainer, cfg.time_budget, len(bundle.val) if bundle.val else 0)
        recipe = dataclasses.replace(resolve_recipe(cfg, bundle, device, length=steps / trainer.steps_per_epoch),
                                     epochs=math.ceil(steps / trainer.steps_per_epoch), total_steps=steps)
        trainer = _build_trainer(model, bundle, recipe, cfg, device, dtype, run_dir)
        trainer.callbacks.append(TimeBudget(cfg.time_budget))
        _log(cfg, f"time budget {cfg.time_budget:g}s: {steps} steps planned ({recipe.epochs} epochs, "
                  f"~{per_step * 1000:.0f} ms/step)")
    _write_run_file(run_dir, data, cfg, recipe)
    _announce(cfg, bundle, recipe, device, dtype, run_dir)
    return Classifier.from_training(_fit_and_finish(trainer, bundle, cfg, data, run_dir))


def _resume(run_dir: Path, overrides: dict):
    from sortnet.classifier import Classifier

    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        raise ConfigError(f"{run_dir} is not a sortnet run folder (no {RUN_FILE}); give the folder `train --out` made")
    saved = json.loads(run_file.read_text())
    cfg_dict = dict(saved["config"], **{k: v for k, v in overrides.items() if k in ("progress", "device")})
    cfg = TrainConfig.from_dict(cfg_dict)
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    device, dtype, bundle, recipe, model = _prepare(cfg, saved["data"], saved["recipe"])
    trainer = _build_trainer(model, bundle, recipe, cfg, device, dtype, run_dir)
    trainer.load_state_dict(state)
    _log(cfg, f"resuming {run_dir} after epoch {trainer.epoch}/{recipe.epochs}")
    return Classifier.from_training(_fit_and_finish(trainer, bundle, cfg, saved["data"], run_dir))


def _announce(cfg, bundle: DataBundle, recipe: Recipe, device, dtype, run_dir: Path) -> None:
    p = bundle.preprocessing
    counts = f"{len(bundle.train)} train / {len(bundle.val) if bundle.val else 0} val / " \
             f"{len(bundle.test) if bundle.test else 0} test"
    _log(cfg, f"data: {bundle.source}  {len(bundle.classes)} classes  {counts}  {p.img_size}px x{p.channels}")
    for note in bundle.notes:
        _log(cfg, f"  {note}")
    prec = "fp32" if dtype is None else str(dtype).removeprefix("torch.")
    _log(cfg, f"model: {recipe.model}  {recipe.epochs} epochs  batch {recipe.batch_size}  {recipe.optimizer} "
              f"lr {recipe.lr:g}  device {device} {prec}  run dir {run_dir}")


def _fit_and_finish(trainer: Trainer, bundle: DataBundle, cfg: TrainConfig, data: str, run_dir: Path) -> dict:
    from sortnet.evaluation.metrics import compute_metrics

    try:
        trainer.fit()
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"training interrupted; continue with: sortnet train --resume {run_dir}") from None
    train_seconds = sum(h["epoch_seconds"] for h in trainer.history)  # pure training, across resumes
    metrics = {"train_seconds": round(train_seconds, 2), "epochs": trainer.epoch, "best": trainer.best,
               "history": trainer.history}
    tta = trainer.tta()
    for split in ("val", "test"):
        data_set = getattr(bundle, split)
        if data_set is not None and len(data_set):
            logits = predict_logits(trainer.model, data_set.images, trainer.device, trainer.dtype, tta=tta,
                                    batch_size=eval_batch_size(data_set.images))
            probs = torch.softmax(logits, 1).numpy()
            metrics[split] = compute_metrics(data_set.labels, probs, bundle.classes)
    meta = {
        "classes": bundle.classes,
        "preprocessing": bundle.preprocessing.to_dict(),
        "arch": trainer.recipe.model,
        "tta": tta.to_dict(),
        "data": data,
        "config": cfg.to_dict(),
        "recipe": trainer.recipe.to_dict(),
        "metrics": {k: {"accuracy": v["accuracy"], **({"top5_accuracy": v["top5_accuracy"]}
                        if "top5_accuracy" in v else {})} for k, v in metrics.items() if k in ("val", "test")},
    }
    trainer.model.to("cpu").to(memory_format=torch.contiguous_format)
    model_path = save_model(run_dir / MODEL_FILE, trainer.model, meta)
    skipped = [s.to_dict() for s in bundle.skipped]
    atomic_write_text(run_dir / "metrics.json", json.dumps({**metrics, "skipped_files": skipped}, indent=2))
    _final_summary(cfg, metrics, bundle, model_path, train_seconds)
    return {"model": trainer.model, "meta": meta, "run_dir": run_dir, "metrics": metrics, "skipped": skipped}


def _final_summary(cfg, metrics: dict, bundle: DataBundle, model_path: Path, seconds: float) -> None:
    parts = [f"{split} accuracy {metrics[split]['accuracy']:.4f}" for split in ("val", "test") if split in metrics]
    _log(cfg, f"done in {seconds:.1f}s: " + (", ".join(parts) or "no held-out data"))
    if bundle.skipped:
        _log(cfg, f"{len(bundle.skipped)} file(s) skipped:")
        for s in bundle.skipped:
            _log(cfg, f"  {s.path}: {s.reason}")
    _log(cfg, f"model file: {model_path}")
