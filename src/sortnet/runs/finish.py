"""The end of a run: held-out metrics (with TTA), the model file, metrics.json and the closing summary.

Usage:
    result = finish_run(trainer, bundle, cfg, run_dir)
    # {"model", "meta": ModelMeta, "run_dir", "metrics", "skipped", "probs": {split: float [N, K]} (for the report)}
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from sortnet.atomic import atomic_write_text
from sortnet.calibrate import calibrated_probs, fit_calibration
from sortnet.config import TrainConfig
from sortnet.data.dataset import DataBundle
from sortnet.evaluation.metrics import compute_metrics
from sortnet.jsonsafe import dumps
from sortnet.modelfile import save_model
from sortnet.modelmeta import ModelMeta, Provenance
from sortnet.models.registry import input_normalization
from sortnet.textsafe import terminal_safe
from sortnet.training.budget import TimeBudget
from sortnet.training.clock import Deadline
from sortnet.runfolder.layout import METRICS_FILE, MODEL_FILE
from sortnet.training.trainer import Trainer, eval_batch_size
from sortnet.tta import TTA, predict_logits, view_count
from sortnet.unknown.attach import attach_unknown

SAVE_RESERVE_SECONDS = 0.3  # kept for writing the model file and metrics when deciding on TTA


def finish_run(trainer: Trainer, bundle: DataBundle, cfg: TrainConfig, run_dir: Path | None,
               deadline: Deadline | None = None, reserve_seconds: float = 0.0) -> dict:
    """Evaluate on val/test, write the model file and metrics.json into run_dir (when given).

    deadline: a time budget's; test-time augmentation is skipped when its views would not fit what is left
    of it (less reserve_seconds, for what the command does after the model file: the report).
    """
    train_seconds = sum(h["epoch_seconds"] for h in trainer.history)  # pure training, across resumes
    metrics = {"train_seconds": round(train_seconds, 2), "epochs": trainer.epoch, "best": trainer.best,
               "history": trainer.history}
    tta, why = final_tta(trainer, bundle, deadline, reserve_seconds)
    if why:
        metrics["tta_skipped"] = why
        if cfg.progress:
            print(why, flush=True)
    logits = {split: held_out_logits(trainer, data_set, tta) for split in ("val", "test")
              if (data_set := getattr(bundle, split)) is not None and len(data_set)}
    keeper = next((cb for cb in trainer.callbacks if isinstance(cb, TimeBudget)), None)
    budget = (lambda: {"seconds": deadline.seconds, "used_seconds": round(deadline.elapsed(), 2),
                       **(keeper.timeline() if keeper is not None else {})}) if deadline is not None else None
    return finish_model(trainer.model, trainer.recipe, tta, bundle, cfg, run_dir, metrics,
                        device=trainer.device, dtype=trainer.dtype, logits=logits, budget=budget)


def final_tta(trainer: Trainer, bundle: DataBundle, deadline: Deadline | None,
              reserve_seconds: float = 0.0) -> tuple[TTA, str | None]:
    """The views to evaluate with: the run's TTA, or none when its extra views would pass the deadline."""
    tta = trainer.tta()
    views, per_image = view_count(tta), trainer.eval_image_seconds
    if deadline is None or views == 1 or per_image is None:
        return tta, None
    n_val = len(bundle.val) if bundle.val is not None else 0
    n_test = len(bundle.test) if bundle.test is not None else 0
    extra = per_image * (n_val + n_test) * (views - 1)
    plain = per_image * n_test  # the last validation pass is reused without TTA
    if plain + extra + SAVE_RESERVE_SECONDS + reserve_seconds > deadline.remaining():
        return TTA(), (f"test-time augmentation skipped: its {views - 1} extra views (~{extra:.1f}s) would pass "
                       f"the time budget")
    return tta, None


def held_out_logits(trainer: Trainer, data_set, tta: TTA) -> torch.Tensor:
    """Logits for a held-out split; the last validation pass is reused when it saw the final weights."""
    last = trainer.last_val
    if data_set is trainer.val_set and view_count(tta) == 1 and last is not None and last[0] == trainer.step:
        return last[1]
    return trainer.predict(data_set.images, tta)


def finish_model(model, recipe, tta: TTA, bundle: DataBundle, cfg: TrainConfig, run_dir: Path | None,
                 metrics: dict, *, device, dtype, logits: dict | None = None,
                 weights_source: dict | None = None, budget=None, features: dict | None = None) -> dict:
    """finish_run for any trained model. logits: {"val"/"test": float [N, K]} already computed with the TTA
    (e.g. from cached features); other splits are predicted here. weights_source: the pretrained weights'
    {"name", "source", "sha256", ...}, recorded in the model file's provenance. budget: () -> metrics' "budget"
    entry, asked right after the model file is written (a time budget's whole span ends there). features:
    {"train", "val"} penultimate features already computed (cached), for the unknown scorer (sortnet/unknown/).
    Probabilities are temperature-scaled (sortnet/calibrate.py, fitted on val) before any metric."""
    held_out_probs = {}  # split -> float [N, K], kept for the report (same predictions as the metrics)
    held_out_logits = {}
    for split in ("val", "test"):
        data_set = getattr(bundle, split)
        if data_set is not None and len(data_set):
            split_logits = (logits or {}).get(split)
            if split_logits is None:
                split_logits = predict_logits(model, data_set.images, device, dtype, tta=tta,
                                              batch_size=eval_batch_size(data_set.images))
            held_out_logits[split] = split_logits
    calibration = held_out_calibration(held_out_logits, bundle)
    for split, split_logits in held_out_logits.items():
        probs = calibrated_probs(split_logits, calibration["temperature"] if calibration else 1.0)
        metrics[split] = compute_metrics(getattr(bundle, split).labels, probs, bundle.classes)
        held_out_probs[split] = probs
    prep = bundle.preprocessing
    mean, std = input_normalization(recipe.model, prep.mean, prep.std, recipe.pretrained)
    prep = dataclasses.replace(prep, mean=mean, std=std)
    meta = ModelMeta(
        classes=list(bundle.classes), preprocessing=prep, arch=recipe.model, tta=tta,
        data=bundle.data, config=cfg.to_dict(), recipe=recipe.to_dict(),
        metrics={k: {"accuracy": v["accuracy"], **({"top5_accuracy": v["top5_accuracy"]}
                     if "top5_accuracy" in v else {})} for k, v in metrics.items() if k in ("val", "test")},
        provenance=Provenance(weights_source=weights_source), calibration=calibration,
    )
    model, meta, unknown_scores = attach_unknown(model, meta, bundle, tta, cfg, device, dtype, features)
    model.to("cpu").to(memory_format=torch.contiguous_format)
    model.eval()
    skipped = [s.to_dict() for s in bundle.skipped]
    model_path = None
    if run_dir is not None:
        model_path = save_model(Path(run_dir) / MODEL_FILE, model, meta)
    if budget is not None:  # start-up, training, evaluation and the model file: the budget's span
        metrics["budget"] = budget()
    if run_dir is not None:
        atomic_write_text(Path(run_dir) / METRICS_FILE, dumps({**metrics, "skipped_files": skipped}, indent=2))
    _final_summary(cfg, metrics, bundle, model_path, metrics.get("train_seconds", 0.0))
    return {"model": model, "meta": meta, "run_dir": run_dir, "metrics": metrics, "skipped": skipped,
            "probs": held_out_probs, "unknown_scores": unknown_scores}


def held_out_calibration(held_out_logits: dict, bundle: DataBundle) -> dict | None:
    """Temperature fitted on val logits (None without val); the test split's ECE before/after when there is one."""
    if "val" not in held_out_logits:
        return None
    calibration = fit_calibration(held_out_logits["val"], bundle.val.labels)
    if "test" in held_out_logits:
        from sortnet.calibrate import expected_calibration_error

        t, labels, test = calibration["temperature"], bundle.test.labels, held_out_logits["test"]
        calibration["test_ece_before"] = round(expected_calibration_error(labels, calibrated_probs(test)), 6)
        calibration["test_ece_after"] = round(expected_calibration_error(labels, calibrated_probs(test, t)), 6)
    return calibration


def _final_summary(cfg: TrainConfig, metrics: dict, bundle: DataBundle, model_path: Path | None,
                   seconds: float) -> None:
    if not cfg.progress:
        return
    parts = [f"{split} accuracy {metrics[split]['accuracy']:.4f}" for split in ("val", "test") if split in metrics]
    budget = metrics.get("budget")
    whole = f" (model file at {budget['used_seconds']:.1f}s of a {budget['seconds']:g}s budget)" if budget else ""
    print(f"done in {seconds:.1f}s of training{whole}: " + (", ".join(parts) or "no held-out data"), flush=True)
    if bundle.skipped:
        print(f"{len(bundle.skipped)} file(s) skipped:", flush=True)
        for s in bundle.skipped:
            print(terminal_safe(f"  {s.path}: {s.reason}"), flush=True)
    if model_path is not None:
        print(f"model file: {model_path}", flush=True)
