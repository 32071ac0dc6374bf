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
from sortnet.config import TrainConfig
from sortnet.data.dataset import DataBundle
from sortnet.evaluation.metrics import compute_metrics
from sortnet.infer.batch import TTA, predict_logits
from sortnet.jsonsafe import dumps
from sortnet.modelfile import save_model
from sortnet.modelmeta import ModelMeta, Provenance
from sortnet.models.registry import input_normalization
from sortnet.textsafe import terminal_safe
from sortnet.training.rundir import METRICS_FILE, MODEL_FILE
from sortnet.training.trainer import Trainer, eval_batch_size



def finish_run(trainer: Trainer, bundle: DataBundle, cfg: TrainConfig, run_dir: Path | None) -> dict:
    """Evaluate on val/test, write the model file and metrics.json into run_dir (when given)."""
    train_seconds = sum(h["epoch_seconds"] for h in trainer.history)  # pure training, across resumes
    metrics = {"train_seconds": round(train_seconds, 2), "epochs": trainer.epoch, "best": trainer.best,
               "history": trainer.history}
    return finish_model(trainer.model, trainer.recipe, trainer.tta(), bundle, cfg, run_dir, metrics,
                        device=trainer.device, dtype=trainer.dtype)


def finish_model(model, recipe, tta: TTA, bundle: DataBundle, cfg: TrainConfig, run_dir: Path | None,
                 metrics: dict, *, device, dtype, logits: dict | None = None,
                 weights_source: dict | None = None) -> dict:
    """finish_run for any trained model. logits: {"val"/"test": float [N, K]} already computed with the TTA
    (e.g. from cached features); other splits are predicted here. weights_source: the pretrained weights'
    {"name", "source", "sha256", ...}, recorded in the model file's provenance."""
    held_out_probs = {}  # split -> float [N, K], kept for the report (same predictions as the metrics)
    for split in ("val", "test"):
        data_set = getattr(bundle, split)
        if data_set is not None and len(data_set):
            split_logits = (logits or {}).get(split)
            if split_logits is None:
                split_logits = predict_logits(model, data_set.images, device, dtype, tta=tta,
                                              batch_size=eval_batch_size(data_set.images))
            probs = torch.softmax(split_logits, 1).numpy()
            metrics[split] = compute_metrics(data_set.labels, probs, bundle.classes)
            held_out_probs[split] = probs
    prep = bundle.preprocessing
    mean, std = input_normalization(recipe.model, prep.mean, prep.std, recipe.pretrained)
    prep = dataclasses.replace(prep, mean=mean, std=std)
    meta = ModelMeta(
        classes=list(bundle.classes), preprocessing=prep, arch=recipe.model, tta=tta,
        data=bundle.data, config=cfg.to_dict(), recipe=recipe.to_dict(),
        metrics={k: {"accuracy": v["accuracy"], **({"top5_accuracy": v["top5_accuracy"]}
                     if "top5_accuracy" in v else {})} for k, v in metrics.items() if k in ("val", "test")},
        provenance=Provenance(weights_source=weights_source),
    )
    model.to("cpu").to(memory_format=torch.contiguous_format)
    model.eval()
    skipped = [s.to_dict() for s in bundle.skipped]
    model_path = None
    if run_dir is not None:
        model_path = save_model(Path(run_dir) / MODEL_FILE, model, meta)
        atomic_write_text(Path(run_dir) / METRICS_FILE, dumps({**metrics, "skipped_files": skipped}, indent=2))
    _final_summary(cfg, metrics, bundle, model_path, metrics.get("train_seconds", 0.0))
    return {"model": model, "meta": meta, "run_dir": run_dir, "metrics": metrics, "skipped": skipped,
            "probs": held_out_probs}


def _final_summary(cfg: TrainConfig, metrics: dict, bundle: DataBundle, model_path: Path | None,
                   seconds: float) -> None:
    if not cfg.progress:
        return
    parts = [f"{split} accuracy {metrics[split]['accuracy']:.4f}" for split in ("val", "test") if split in metrics]
    print(f"done in {seconds:.1f}s: " + (", ".join(parts) or "no held-out data"), flush=True)
    if bundle.skipped:
        print(f"{len(bundle.skipped)} file(s) skipped:", flush=True)
        for s in bundle.skipped:
            print(terminal_safe(f"  {s.path}: {s.reason}"), flush=True)
    if model_path is not None:
        print(f"model file: {model_path}", flush=True)
