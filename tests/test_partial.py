"""Partial fine-tuning: the activation cache (reuse, invalidation by split / weights / files / damage), the
front/tail split of EfficientNet-Lite, the tail trainer beating the head alone on a small synthetic task,
the time-based schedule using (not overrunning) the seconds it is given, and `--finetune partial` through
the real CLI on a few photos.

Run: PYTHONPATH=src .venv/bin/pytest tests/test_partial.py -q
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from torch import nn

from sortnet.config import ConfigError, TrainConfig
from sortnet.data.dataset import ImageSet
from sortnet.data.preprocess import Preprocessing
from sortnet.models.efficientnet_lite import LITE_CONFIGS, EfficientNetLite, MBConv, conv_bn
from sortnet.transfer.actcache import activations_dir, cached_activations
from sortnet.transfer.head import train_head
from sortnet.transfer.partial import TailTrainer, tail_forward, tail_logits, threads

BACKBONE = {"arch": "test-net", "weights_sha256": "cd" * 32}
SHAPE = (3, 2, 2)  # activations of a 2x2-pooled 8 px image: channels x 2 x 2


class PoolingFront:
    """Stands in for the front's extractor: 4x4 average pooling of the view, flattened; records calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def extract(self, images, views, progress=False, seed=0, desc=""):
        from sortnet.transfer.extract import view_batch

        self.calls.append(tuple(views))
        x = torch.as_tensor(np.asarray(images))
        return np.stack([nn.functional.avg_pool2d(view_batch(x, v, 0, seed), 4).flatten(1).numpy()
                         for v in views]).astype(np.float32)


@pytest.fixture
def image_files(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        p = tmp_path / f"img{i}.png"
        p.write_bytes(rng.bytes(32))
        paths.append(str(p))
    images = rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8)
    return ImageSet(images=images, labels=np.arange(6) % 2, classes=["a", "b"], paths=paths)


def _prep() -> Preprocessing:
    return Preprocessing(img_size=8, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3)


def _get(data, ex, split=4, backbone=BACKBONE, views=("orig", "flip")):
    return cached_activations(data, ex, backbone, _prep(), split, SHAPE, views)


def test_activations_computed_once_then_read_as_float16(image_files) -> None:
    ex = PoolingFront()
    first, hits = _get(image_files, ex)
    assert hits == [] and ex.calls == [("orig",), ("flip",)]
    assert first.dtype == torch.float16 and tuple(first.shape) == (2, 6, *SHAPE)
    want = torch.from_numpy(ex.extract(image_files.images, ["orig"])[0]).reshape(6, *SHAPE).half()
    assert torch.equal(first[0], want)
    again, hits = _get(image_files, ex)
    assert hits == ["orig", "flip"] and len(ex.calls) == 3  # only the reference call above
    assert torch.equal(first, again)
    more, hits = _get(image_files, ex, views=("orig", "flip", "crop1"))
    assert hits == ["orig", "flip"] and ex.calls[-1] == ("crop1",)


def test_split_point_weights_and_files_invalidate(image_files) -> None:
    ex = PoolingFront()
    _get(image_files, ex)
    assert _get(image_files, ex, split=3)[1] == []  # another split point
    assert _get(image_files, ex, backbone={**BACKBONE, "weights_sha256": "ef" * 32})[1] == []  # other weights
    os.utime(image_files.paths[2], ns=(1, 1))  # a file changed
    assert _get(image_files, ex)[1] == []
    assert _get(image_files, ex)[1] == ["orig", "flip"]


def test_damaged_entry_is_recomputed(image_files) -> None:
    ex = PoolingFront()
    first, _ = _get(image_files, ex)
    for f in activations_dir().glob("*.safetensors"):
        data = bytearray(f.read_bytes())
        data[-3] ^= 0xFF  # one flipped byte in the tensor: the checksum no longer matches
        f.write_bytes(bytes(data))
    again, hits = _get(image_files, ex)
    assert hits == [] and torch.equal(first, again)


def test_lite_split_front_then_tail_is_the_body() -> None:
    body = EfficientNetLite(LITE_CONFIGS["efficientnet-lite0"]).eval()
    assert body.last_stage_blocks() == 4 and len(body.blocks) == 16
    front, tail = body.split(4)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(tail(front(x)), body(x), atol=1e-5)
        assert tuple(front(x).shape) == (2, 192, 2, 2)


def _synthetic(n: int, seed: int):
    """Activations whose class is the sign of a per-pixel product of two channels, averaged: a random frozen
    tail followed by global pooling keeps little of it, a trained one can."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, 4, 4, generator=g)
    y = ((x[:, 0] * x[:, 1]).mean((1, 2)) > 0).long()
    return x.half()[None], y.numpy()


def _tiny_tail() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(MBConv(8, 16, 3, 1, 4), MBConv(16, 16, 3, 1, 4), conv_bn(16, 64, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


@pytest.fixture(autouse=True)
def _one_thread():
    with threads(1):  # tiny tensors: a second thread only adds waiting (10x slower on a loaded 2-core machine)
        yield


def test_tail_training_beats_the_head_alone() -> None:
    train, y = _synthetic(600, 1)
    val, yv = _synthetic(300, 2)
    tail = _tiny_tail()
    head = nn.Linear(64, 2)
    fit = train_head(tail_forward(tail, train[0]).numpy()[None], y, 2)
    head.load_state_dict({"weight": fit.weight, "bias": fit.bias})
    before = float((tail_logits(tail, head, val).argmax(1).numpy() == yv).mean())
    # a randomly initialised tail wants larger steps than the pretrained one's defaults
    result = TailTrainer(tail, head, train, y, val=(val, yv), seed=0, lrs=(1e-2, 1e-2), num_threads=1).fit(epochs=12)
    after = float((tail_logits(tail, head, val).argmax(1).numpy() == yv).mean())
    assert result.epochs == 12 and result.best_epoch > 0
    assert after >= before + 0.15, (before, after)


def test_time_based_schedule_uses_the_seconds_given() -> None:
    train, y = _synthetic(64, 3)
    tail, head = _tiny_tail(), nn.Linear(64, 2)
    t0 = time.perf_counter()
    result = TailTrainer(tail, head, train, y, seed=0, num_threads=1).fit(seconds=1.5)
    took = time.perf_counter() - t0
    assert 1.4 <= took <= 1.5 * 1.1, took  # used, and not overrun by more than a step and a bit
    assert result.epochs > 1 and result.best_epoch == result.epochs  # no validation: the last state


def test_finetune_setting_is_checked() -> None:
    assert TrainConfig(finetune="partial:3").finetune == "partial:3"
    assert TrainConfig(finetune="partial").finetune == "partial"
    with pytest.raises(ConfigError, match="partial:N"):
        TrainConfig(finetune="partial:x")
    with pytest.raises(ConfigError, match="finetune must be one of"):
        TrainConfig(finetune="some")


def test_backbone_for_the_budget_from_recorded_speed(tmp_path, monkeypatch) -> None:
    from sortnet.transfer.speed import (BACKBONE_EXTRACT_SHARE, budget_backbone, extraction_flops, forward_macs,
                                        predicted_extract_seconds, record_extraction)

    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    flops0 = 2 * forward_macs("efficientnet-lite0", 224)
    for img_s in (9.0, 10.0, 30.0):  # three past extractions: the median counts
        record_extraction("efficientnet-lite0", 224, img_s)
    assert extraction_flops() == (pytest.approx(10.0 * flops0), "3 past extraction(s) here")
    lite0 = predicted_extract_seconds("efficientnet-lite0", 100, 2)
    assert lite0 == pytest.approx(100 * 2 / 10.0)  # the same backbone: the recorded img/s itself
    lite2 = predicted_extract_seconds("efficientnet-lite2", 100, 2)
    assert 1.8 < lite2 / lite0 < 2.8  # Lite2 at 260 px: ~2.2x Lite0's multiply-adds
    assert budget_backbone(100, 2, lite0 / BACKBONE_EXTRACT_SHARE * 0.9)[0] == "efficientnet-lite0"
    assert budget_backbone(100, 2, lite2 / BACKBONE_EXTRACT_SHARE * 1.01)[0] == "efficientnet-lite2"
    arch, why = budget_backbone(100, 2, lite2 / BACKBONE_EXTRACT_SHARE * 1.01,
                                available=lambda a: a != "efficientnet-lite2")
    assert arch == "efficientnet-lite1" and "past extraction" in why
    record_extraction("efficientnet-lite0", 224, 10.0, split=4)  # a partial run's front counts by its own work
    assert extraction_flops()[1] == "4 past extraction(s) here"


def test_auto_on_a_cpu_with_a_budget_considers_partial() -> None:
    import types

    from sortnet.transfer.finetune import FULL_MIN_IMAGES, choose_finetune

    model = types.SimpleNamespace(body=EfficientNetLite(LITE_CONFIGS["efficientnet-lite0"]))
    small = types.SimpleNamespace(train=range(FULL_MIN_IMAGES - 1), val=range(20))
    mode, why = choose_finetune(TrainConfig(), model, small, torch.device("cpu"), 600.0)
    assert mode == "partial" and "last blocks" in why
    no_val = types.SimpleNamespace(train=range(FULL_MIN_IMAGES - 1), val=None)
    assert choose_finetune(TrainConfig(), model, no_val, torch.device("cpu"), 600.0)[0] == "head"
    assert choose_finetune(TrainConfig(), model, small, torch.device("cpu"), None)[0] == "head"
    assert choose_finetune(TrainConfig(finetune="partial:3"), model, small, torch.device("cpu"), None) == \
        ("partial", "--finetune partial:3")


def test_partial_needs_a_splittable_backbone() -> None:
    import types

    from sortnet.transfer.partial_fit import PartialFinetuneError, fit_partial

    model = types.SimpleNamespace(body=nn.Sequential(nn.Conv2d(3, 4, 3)))
    with pytest.raises(PartialFinetuneError, match="efficientnet-lite0/1/2"):
        fit_partial(model, None, TrainConfig(), None, 2, lambda: None)
