"""Transfer learning parts: the feature cache (reuse, invalidation), extraction views and backends, the linear
head against scikit-learn, discriminative learning rates, frozen BatchNorm, the --finetune auto choice.

Run: PYTHONPATH=src .venv/bin/pytest tests/test_transfer.py -q
"""
from __future__ import annotations

import os
import types

import numpy as np
import pytest
import torch
from torch import nn

from sortnet.data.dataset import ImageSet
from sortnet.data.preprocess import Preprocessing
from sortnet.transfer.extract import FeatureExtractor, view_batch
from sortnet.transfer.featcache import cached_features, features_dir
from sortnet.transfer.head import train_head

BACKBONE = {"arch": "test-net", "weights_sha256": "ab" * 32}


class CountingExtractor:
    """Stands in for the backbone: features = per-view channel means; records what it was asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def extract(self, images, views, progress=False, seed=0, desc=""):
        self.calls.append(tuple(views))
        x = torch.as_tensor(np.asarray(images))
        return np.stack([view_batch(x, v, 0, seed).mean(dim=(2, 3)).numpy() for v in views]).astype(np.float32)


@pytest.fixture
def image_files(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        p = tmp_path / f"img{i}.png"
        p.write_bytes(rng.bytes(32))  # contents do not matter: the key uses path, size and mtime
        paths.append(str(p))
    images = rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8)
    return ImageSet(images=images, labels=np.arange(6) % 2, classes=["a", "b"], paths=paths)


def _prep(**kw) -> Preprocessing:
    return Preprocessing(img_size=8, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3, **kw)


def test_features_computed_once_then_read(image_files) -> None:
    ex = CountingExtractor()
    first, hits = cached_features(image_files, ex, BACKBONE, _prep(), ("orig", "flip"))
    assert hits == [] and ex.calls == [("orig", "flip")]
    again, hits = cached_features(image_files, ex, BACKBONE, _prep(), ("orig", "flip"))
    assert hits == ["orig", "flip"] and len(ex.calls) == 1
    np.testing.assert_array_equal(first, again)
    expected = ex.extract(image_files.images, ("orig", "flip"))  # stored as float16: equal to that precision
    np.testing.assert_allclose(again, expected, rtol=1e-3, atol=1e-3)


def test_more_views_reuse_the_cached_ones(image_files) -> None:
    ex = CountingExtractor()
    cached_features(image_files, ex, BACKBONE, _prep(), ("orig", "flip"))
    feats, hits = cached_features(image_files, ex, BACKBONE, _prep(), ("orig", "flip", "crop1"))
    assert hits == ["orig", "flip"] and ex.calls[-1] == ("crop1",) and feats.shape[0] == 3


@pytest.mark.parametrize("change", ["file edited", "other weights", "other crop", "other normalization",
                                    "file removed"])
def test_cache_invalidation(image_files, change: str) -> None:
    ex = CountingExtractor()
    cached_features(image_files, ex, BACKBONE, _prep(), ("orig",))
    data, backbone, prep = image_files, BACKBONE, _prep()
    if change == "file edited":
        st = os.stat(data.paths[2])
        os.utime(data.paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    elif change == "other weights":
        backbone = dict(BACKBONE, weights_sha256="cd" * 32)
    elif change == "other crop":
        prep = _prep(crop=0.875)
    elif change == "other normalization":
        prep = Preprocessing(img_size=8, channels=3, mean=(0.4,) * 3, std=(0.5,) * 3)
    else:
        data = data.subset(np.arange(5))
    _, hits = cached_features(data, ex, backbone, prep, ("orig",))
    assert hits == [] and len(ex.calls) == 2


def test_damaged_cache_entry_is_recomputed(image_files) -> None:
    ex = CountingExtractor()
    cached_features(image_files, ex, BACKBONE, _prep(), ("orig",))
    (entry,) = [p for p in features_dir().iterdir() if p.suffix == ".safetensors"]
    entry.write_bytes(entry.read_bytes()[:50])
    feats, hits = cached_features(image_files, ex, BACKBONE, _prep(), ("orig",))
    assert hits == [] and len(ex.calls) == 2 and feats.shape == (1, 6, 3)


def test_views_are_deterministic_and_distinct() -> None:
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(view_batch(x, "flip", 0), x.float().flip(-1))
    crop = view_batch(x, "crop1", 0)
    assert torch.equal(crop, view_batch(x, "crop1", 0)) and not torch.equal(crop, view_batch(x, "crop2", 0))
    assert crop.shape == x.shape


def test_onnxruntime_and_torch_backends_agree() -> None:
    pytest.importorskip("onnxruntime")
    from sortnet.models.registry import create_model

    torch.manual_seed(0)  # a small layer-spec net exports in a second (lite0's export is in test_pretrained_cli)
    model = create_model("conv8 bn conv16x3s2 bn gap", 3, 2, 32, (0.5,) * 3, (0.25,) * 3).eval()
    images = np.random.default_rng(1).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    ort = FeatureExtractor(model, torch.device("cpu"))
    ref = FeatureExtractor(model, torch.device("cpu"), runtime="torch")
    a, b = ort.extract(images, ("orig", "flip")), ref.extract(images, ("orig", "flip"))
    assert ort.backend == "onnxruntime" and ref.backend == "torch"
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    with torch.no_grad():  # and both equal the model's own features
        np.testing.assert_allclose(b[1], model.features(torch.as_tensor(images).flip(-1)).numpy(), atol=1e-4)


def test_linear_head_matches_scikit_learn(monkeypatch) -> None:
    from sklearn.linear_model import LogisticRegression

    import sortnet.transfer.head as head_mod

    rng = np.random.default_rng(0)
    n, f, k = 90, 12, 3
    labels = np.arange(n) % k
    feats = (rng.normal(0, 1, (1, n, f)) + labels[None, :, None] * rng.normal(0, 0.6, f)).astype(np.float32) * 3
    monkeypatch.setattr(head_mod, "LAMBDAS", (0.05,))  # one strength, so the solvers see the same problem
    head = train_head(feats, labels, k)
    x = feats[0]
    z = (x - x.mean(0)) / (x.std(0) + 1e-6)
    # ours: mean cross-entropy + lam/2 |W|^2 on standardized features == sklearn's C = 1 / (n * lam)
    sk = LogisticRegression(C=1 / (n * 0.05), max_iter=5000, tol=1e-10).fit(z, labels)
    ours = torch.softmax(torch.from_numpy(x) @ head.weight.T + head.bias, 1).numpy()
    np.testing.assert_allclose(ours, sk.predict_proba(z), atol=2e-3)


def test_discriminative_learning_rates_and_frozen_batchnorm() -> None:
    from sortnet.models.registry import create_model
    from sortnet.training.trainer import Trainer, build_optimizer

    model = create_model("efficientnet-lite0", 3, 2, 32, (0.5,) * 3, (0.25,) * 3)
    recipe = types.SimpleNamespace(lr=1e-3, weight_decay=0.01, optimizer="adamw", layer_lr=[0.01, 0.1])
    opt = build_optimizer(model, recipe)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lrs[id(model.body.stem[0].weight)] == pytest.approx(1e-5)
    assert lrs[id(model.body.head[0].weight)] == pytest.approx(1e-4)
    assert lrs[id(model.head.weight)] == pytest.approx(1e-3)
    assert len(lrs) == len(list(model.parameters()))  # every parameter in exactly one group
    from sortnet.training.recipe import Recipe

    r = Recipe(model="efficientnet-lite0", epochs=1, batch_size=4, lr=1e-3, optimizer="adamw", weight_decay=0.0,
               schedule="onecycle", warmup=0.0, label_smoothing=0.0, flip=False, translate=0, rrc=False,
               tta_flip=False, tta_shift=0, bn_frozen=True, layer_lr=[0.01, 0.1])
    data = ImageSet(images=np.random.default_rng(0).integers(0, 256, (8, 3, 32, 32), dtype=np.uint8),
                    labels=np.arange(8) % 2, classes=["a", "b"])
    before = model.body.stem[1].running_mean.clone()
    Trainer(model, data, None, r, device=torch.device("cpu"), dtype=None).fit()
    assert torch.equal(model.body.stem[1].running_mean, before)  # statistics kept
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(not m.training for m in bns)


def test_finetune_auto_choice_and_reason() -> None:
    from sortnet.config import TrainConfig
    from sortnet.transfer.finetune import FULL_MIN_IMAGES, choose_finetune

    small = types.SimpleNamespace(train=range(FULL_MIN_IMAGES - 1))
    big = types.SimpleNamespace(train=range(5000))
    assert choose_finetune(TrainConfig(finetune="full"), None, small, torch.device("cpu"), None)[0] == "full"
    mode, why = choose_finetune(TrainConfig(), None, small, torch.device("cpu"), 600.0)
    assert mode == "head" and "training images" in why
    mode, why = choose_finetune(TrainConfig(), None, big, torch.device("cpu"), None)
    assert mode == "head" and "--time-budget" in why
    assert choose_finetune(TrainConfig(), None, big, torch.device("cuda"), None)[0] == "full"
