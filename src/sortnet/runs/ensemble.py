"""`sortnet train DATA --ensemble N`: N models (seeds seed .. seed+N-1) on one prepared split, one ensemble.

The data is prepared once; each member is an ordinary run folder RUN/member-<k>/ (its own model file,
checkpoint, metrics; resumable alone) trained with its share of --time-budget, which covers the whole
command: what is left, split evenly among the members still to train, less their measured time outside
training and the final evaluation (see _member_budget). RUN/model.safetensors is their ensemble (equal weights), evaluated on
the validation and test splits; metrics.json holds every member's numbers, the ensemble's, and its gain.

Usage:
    clf = train_ensemble("fashion-mnist", "runs/fm-ens", {"ensemble": 3, "time_budget": 600})
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from sortnet.calibrate import calibrated_probs, fit_calibration
from sortnet.config import TrainConfig
from sortnet.ensemble.build import ensemble_from_members
from sortnet.evaluation.metrics import compute_metrics
from sortnet.modelfile import save_model
from sortnet.runfolder.layout import MODEL_FILE, member_dir
from sortnet.runfolder.record import write_metrics_file
from sortnet.tta import predict_logits

FIRST_OVERHEAD = 0.15  # share of a member's time expected outside training before one was measured
FINAL_EVAL = 0.6  # the final ensemble evaluation, per member, as a share of one member's non-training time


def _ensemble_metrics(model, bundle) -> tuple[dict, dict | None]:
    """(metrics per held-out split, calibration): the temperature of the ensemble's output, fitted on val
    (sortnet/calibrate.py), applied before the metrics as everywhere else."""
    logits = {split: predict_logits(model, data.images, torch.device("cpu"), batch_size=256)
              for split in ("val", "test") if (data := getattr(bundle, split)) is not None and len(data)}
    calibration = fit_calibration(logits["val"], bundle.val.labels) if "val" in logits else None
    t = calibration["temperature"] if calibration else 1.0
    return {split: compute_metrics(getattr(bundle, split).labels, calibrated_probs(lg, t), bundle.classes)
            for split, lg in logits.items()}, calibration


def _summary(members: list, ens: dict) -> dict:
    rows = {}
    for split in ("val", "test"):
        accs = [c.metrics[split]["accuracy"] for c in members if split in c.metrics]
        if split in ens and accs:
            rows[split] = {"members": [round(a, 4) for a in accs], "best_member": round(max(accs), 4),
                           "ensemble": round(ens[split]["accuracy"], 4),
                           "gain_points": round(100 * (ens[split]["accuracy"] - max(accs)), 2)}
    return rows


def _member_budget(total: float | None, started: float, count: int, k: int, overheads: list[float]) -> float | None:
    """Training seconds for member k: what is left of the whole budget, less the time each remaining member
    spends outside training (planning, its evaluation and files: measured on the members so far) and the
    ensemble's own evaluation at the end (about FINAL_EVAL x a member's evaluation for each member)."""
    if not total:
        return None
    left = total - (time.perf_counter() - started)
    per_member = left / (count - k)
    overhead = sum(overheads) / len(overheads) if overheads else FIRST_OVERHEAD * per_member
    final = FINAL_EVAL * overhead * count
    return max(2.0, (left - final) / (count - k) - overhead)


def train_ensemble(data: str, run_dir: Path, settings: dict, callbacks=None):
    """Prepare once, fit `settings["ensemble"]` members, write RUN/model.safetensors (their ensemble)."""
    from sortnet.classifier import Classifier
    from sortnet.runs.fit import fit
    from sortnet.runs.prepare import prepare

    started = time.perf_counter()
    cfg = TrainConfig.from_dict(settings)
    count = cfg.ensemble
    bundle = prepare(data, **settings)
    members, overheads = [], []
    for k in range(count):
        budget = _member_budget(cfg.time_budget, started, count, k, overheads)
        if cfg.progress:
            print(f"\n== ensemble member {k + 1}/{count}: seed {cfg.seed + k}"
                  + (f", {budget:.0f} s of training" if budget else "") + " ==", flush=True)
        member_settings = dict(settings, ensemble=1, seed=cfg.seed + k, time_budget=budget)
        member = member_dir(run_dir, k + 1)
        member.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        members.append(fit(bundle, out=member, callbacks=callbacks, **member_settings))
        overheads.append(max(0.0, time.perf_counter() - t0 - members[-1].metrics["train_seconds"]))
    names = [str(member_dir(run_dir, k + 1) / MODEL_FILE) for k in range(count)]
    model, meta = ensemble_from_members([(c.model, c.meta) for c in members], "equal", names)
    metrics, calibration = _ensemble_metrics(model, bundle)
    meta = meta.replace(metrics={k: {"accuracy": v["accuracy"]} for k, v in metrics.items()}, config=cfg.to_dict(),
                        calibration=calibration)
    path = save_model(run_dir / MODEL_FILE, model, meta)
    summary = _summary(members, metrics)
    write_metrics_file(run_dir, {"ensemble": {**metrics, "summary": summary}, "members": [c.metrics for c in members],
                                 "seconds": round(time.perf_counter() - started, 1)}, default=_plain)
    if cfg.progress:
        for split, s in summary.items():
            print(f"ensemble of {count}: {split} accuracy {s['ensemble']:.4f} (members {s['members']}, "
                  f"{s['gain_points']:+.2f} points over the best)", flush=True)
        print(f"model file: {path}", flush=True)
    return Classifier(model, meta, run_dir, {**metrics, "summary": summary})


def _plain(value):
    return value.item() if isinstance(value, np.generic) else str(value)
