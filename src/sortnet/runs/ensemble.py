"""`sortnet train DATA --ensemble N`: N models (seeds seed .. seed+N-1) on one prepared split, one ensemble.

The data is prepared once; each member is an ordinary run folder RUN/member-<k>/ (its own model file,
checkpoint, metrics; resumable alone) trained within its own deadline, cut from the whole command's
(--time-budget): an even share of what is left among the members still to train, after the ensemble's
final evaluation is kept (see _member_deadline); a member that ends early leaves its time to the next.
RUN/model.safetensors is their ensemble (equal weights), evaluated on the validation and test splits;
metrics.json holds every member's numbers, the ensemble's, and its gain.

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
from sortnet.training.clock import Deadline
from sortnet.tta import predict_logits

FIRST_FINAL = 0.02  # of the budget, per member: the ensemble's evaluation and files before one member was measured
FINAL_EVAL = 0.6  # the final ensemble evaluation, per member, as a share of one member's evaluation and files


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


def _member_deadline(deadline: Deadline | None, count: int, k: int, finals: list[float]) -> Deadline | None:
    """Member k's own deadline, cut from the command's: an even share of what is left among the members still
    to train, after the ensemble's own evaluation and model file at the end are kept (FINAL_EVAL x a member's
    evaluation and files for each member, measured on the members so far; FIRST_FINAL of the budget before)."""
    if deadline is None:
        return None
    per_member_final = sum(finals) / len(finals) if finals else FIRST_FINAL * deadline.seconds / count
    return deadline.share(1 / (count - k), reserve=FINAL_EVAL * per_member_final * count)


def train_ensemble(data: str, run_dir: Path, settings: dict, callbacks=None, deadline: Deadline | None = None):
    """Prepare once, fit `settings["ensemble"]` members, write RUN/model.safetensors (their ensemble).

    deadline: the whole command's (training/clock.py; default: time_budget= counted from this call)."""
    from sortnet.classifier import Classifier
    from sortnet.runs.fit import fit
    from sortnet.runs.prepare import prepare

    started = time.monotonic()  # for metrics.json's "seconds" only; the budget is the deadline's
    cfg = TrainConfig.from_dict(settings)
    deadline = deadline or (Deadline(cfg.time_budget) if cfg.time_budget else None)
    count = cfg.ensemble
    bundle = prepare(data, **settings)
    members, finals = [], []
    for k in range(count):
        share = _member_deadline(deadline, count, k, finals)
        if cfg.progress:
            print(f"\n== ensemble member {k + 1}/{count}: seed {cfg.seed + k}"
                  + (f", {share.seconds:.0f} s for the whole member" if share else "") + " ==", flush=True)
        member_settings = dict(settings, ensemble=1, seed=cfg.seed + k, time_budget=None)
        member = member_dir(run_dir, k + 1)
        member.mkdir(parents=True, exist_ok=True)
        members.append(fit(bundle, out=member, callbacks=callbacks, deadline=share, **member_settings))
        finals.append(_final_seconds(members[-1].metrics))
    names = [str(member_dir(run_dir, k + 1) / MODEL_FILE) for k in range(count)]
    model, meta = ensemble_from_members([(c.model, c.meta) for c in members], "equal", names)
    metrics, calibration = _ensemble_metrics(model, bundle)
    meta = meta.replace(metrics={k: {"accuracy": v["accuracy"]} for k, v in metrics.items()}, config=cfg.to_dict(),
                        calibration=calibration)
    path = save_model(run_dir / MODEL_FILE, model, meta)
    budget = {"budget": {"seconds": deadline.seconds, "used_seconds": round(deadline.elapsed(), 2)}} \
        if deadline is not None else {}  # the model file's moment in the whole command's budget
    summary = _summary(members, metrics)
    write_metrics_file(run_dir, {"ensemble": {**metrics, "summary": summary}, "members": [c.metrics for c in members],
                                 "seconds": round(time.monotonic() - started, 1), **budget}, default=_plain)
    if cfg.progress:
        for split, s in summary.items():
            print(f"ensemble of {count}: {split} accuracy {s['ensemble']:.4f} (members {s['members']}, "
                  f"{s['gain_points']:+.2f} points over the best)", flush=True)
        print(f"model file: {path}", flush=True)
    return Classifier(model, meta, run_dir, {**metrics, "summary": summary})


def _final_seconds(metrics: dict) -> float:
    """A member's seconds after training (its evaluation and files): what the ensemble's end resembles."""
    budget = metrics.get("budget") or {}
    if "used_seconds" in budget and "training_ended" in budget:
        return max(0.0, budget["used_seconds"] - budget["training_ended"])
    return 0.0


def _plain(value):
    return value.item() if isinstance(value, np.generic) else str(value)
