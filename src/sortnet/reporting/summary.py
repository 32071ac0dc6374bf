"""The report's summary: the data (counts, data-check warnings), the model (parameters, FLOPs, file size),
the training (settings, recipe, time) and where each number came from.

FLOPs are counted, not estimated: one forward pass of one image under torch.utils.flop_counter's
FlopCounterMode (matrix multiplies and convolutions, 2 FLOPs per multiply-add); test-time
augmentation runs that many forward passes per image (`tta_views`, counted by sortnet.tta.view_count).

Usage:
    s = model_summary(model, meta, img_size=28, model_path=path)   # {"parameters": ..., "flops_per_image": ...}
    s = data_summary("photos/", labels, classes, skipped)          # counts + `sortnet check` warnings
    s = training_summary(meta, read_run_records(run_dir))         # settings, recipe, seconds, history
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from sortnet.modelmeta import ModelMeta
from sortnet.models.macs import parameter_count
from sortnet.tta import view_count

SETTINGS = ("model", "epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay", "label_smoothing",
            "augment", "tta", "img_size", "channels", "val_fraction", "seed", "time_budget", "balance", "precision")
# A head fitted on cached features (finetune "head") runs no trainer: these settings did not apply to it
TRAINER_SETTINGS = ("epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay", "label_smoothing")
HEAD_RECIPE = ("model", "pretrained", "finetune", "views", "tta_flip")  # what a head-only run's recipe decided


def count_flops(model: torch.nn.Module, channels: int, img_size: int) -> int:
    """FLOPs of one forward pass on one image [1, C, S, S] (model in eval mode, CPU)."""
    x = torch.zeros(1, channels, img_size, img_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(x)
    return int(counter.get_total_flops())


def model_summary(model: torch.nn.Module, meta: ModelMeta, img_size: int, channels: int,
                  model_path: str | os.PathLike | None = None) -> dict:
    params, trainable = parameter_count(model), parameter_count(model, trainable_only=True)
    views = view_count(meta.tta, img_size)
    out = {"arch": meta.arch, "parameters": int(params), "trainable_parameters": int(trainable),
           "flops_per_image": count_flops(model, channels, img_size), "tta_views": views,
           "input": f"{img_size}x{img_size} px, {channels} channel{'s' if channels > 1 else ''}",
           "classes": meta.num_classes, "sortnet_version": meta.provenance.sortnet_version}
    if model_path is not None and Path(model_path).is_file():
        out["file"] = str(model_path)
        out["file_bytes"] = Path(model_path).stat().st_size
    return out


def _is_checkable(data: str) -> bool:
    from sortnet.data.builtin import builtin_name

    is_builtin = builtin_name(str(data)) is not None and not any(sep in str(data) for sep in ("/", os.sep))
    return not is_builtin and Path(data).expanduser().exists()


def data_summary(data: str, labels: np.ndarray, classes: list[str], skipped: list[dict],
                 check: bool = True, progress: bool = False, split: str | None = None) -> dict:
    """Counts of the evaluated images per class; for folders and CSVs also `sortnet check`'s counts and warnings."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(classes))
    out = {"source": str(data), "split": split, "images": int(len(labels)), "classes": len(classes),
           "per_class": {c: int(n) for c, n in zip(classes, counts)}, "skipped": list(skipped), "check": None}
    if check and _is_checkable(str(data)):
        from sortnet.data.check import run_check

        r = run_check(str(data), progress=progress).report
        table = {split_name: {c: e["readable"] for c, e in per.items()} for split_name, per in r["classes"].items()}
        out["check"] = {"files": r["files"], "readable": r["readable"], "counts": table,
                        "warnings": list(r["warnings"]), "fatal": list(r["fatal"])}
    return out


def training_summary(meta: ModelMeta, records: dict) -> dict:
    """Settings and recipe (from the model file), time, epochs and per-epoch history (from the run folder's
    records, runfolder/record.read_run_records). A head-only pretrained run lists only what applied to it: no
    epochs, optimizer or augmentation of a trainer it never ran, and its head's fit instead."""
    metrics, run = records.get("metrics") or {}, records.get("run") or {}
    config = meta.config or run.get("config") or {}
    recipe = dict(meta.recipe or run.get("recipe") or {})
    head_only = bool(recipe.get("pretrained")) and recipe.get("finetune") == "head"
    settings = {k: config[k] for k in SETTINGS if k in config and not (head_only and k in TRAINER_SETTINGS)}
    if head_only:
        recipe = {k: recipe[k] for k in HEAD_RECIPE if k in recipe}
    return {"data": meta.data, "settings": settings, "recipe": recipe, "head_only": head_only,
            "head": metrics.get("head"), "in_run_folder": bool(metrics), "seconds": metrics.get("train_seconds"),
            "epochs": metrics.get("epochs"), "best": metrics.get("best"), "history": list(metrics.get("history", [])),
            "final": {k: meta.metrics[k] for k in ("val", "test") if k in meta.metrics}}
