"""Caches are verified, never trusted (issue 18, case 3): every entry carries a checksum checked on read;
cached features rewritten as valid safetensors full of NaN, random bytes in the cached backbone graph, or a
rewritten check cache are recomputed (same results as a fresh run), never a traceback."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save

from clirun import run_cli_bounded
from conftest import make_class_folder
from sortnet.data.cacheentry import read_entry, write_entry
from sortnet.data.dataset import ImageSet
from sortnet.data.filecache import FactCache
from sortnet.data.preprocess import Preprocessing
from sortnet.transfer.extract import FeatureExtractor, view_batch
from sortnet.transfer.featcache import cached_features, features_dir

BACKBONE = {"arch": "test-net", "weights_sha256": "ab" * 32}


class CountingExtractor:
    """Features = per-view channel means (a stand-in backbone); records each call."""

    def __init__(self) -> None:
        self.calls = 0

    def extract(self, images, views, progress=False, seed=0, desc=""):
        self.calls += 1
        x = torch.as_tensor(np.asarray(images))
        return np.stack([view_batch(x, v, 0, seed).mean(dim=(2, 3)).numpy() for v in views]).astype(np.float32)


@pytest.fixture
def images(monkeypatch, tmp_path):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    pixels = np.random.default_rng(0).integers(0, 256, (6, 3, 8, 8), dtype=np.uint8)
    return ImageSet(images=pixels, labels=np.arange(6) % 2, classes=["a", "b"])


PREP = Preprocessing(img_size=8, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3)


def test_entries_are_checksummed(tmp_path):
    path = tmp_path / "e"
    assert write_entry(path, b"payload") and read_entry(path) == b"payload"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one flipped bit
    path.write_bytes(bytes(data))
    assert read_entry(path) is None
    path.write_bytes(b"payload")  # a file without the header (an older sortnet, or a hand-made one)
    assert read_entry(path) is None and read_entry(tmp_path / "missing") is None


@pytest.mark.parametrize("forgery", ["nan, no checksum", "nan, valid checksum", "random bytes"])
def test_rewritten_feature_entries_are_recomputed(images, forgery):
    ex = CountingExtractor()
    first, _ = cached_features(images, ex, BACKBONE, PREP, ("orig",))
    (entry,) = features_dir().glob("*.safetensors")
    nan = save({"features": torch.full((6, 3), float("nan"), dtype=torch.float16)})
    entry.write_bytes({"nan, no checksum": nan, "random bytes": np.random.default_rng(1).bytes(300)}.get(forgery, b""))
    if forgery == "nan, valid checksum":
        write_entry(entry, nan)
    feats, hits = cached_features(images, ex, BACKBONE, PREP, ("orig",))
    assert hits == [] and ex.calls == 2 and np.isfinite(feats).all()
    np.testing.assert_array_equal(feats, first)
    assert cached_features(images, ex, BACKBONE, PREP, ("orig",))[1] == ["orig"]  # the fresh entry is used again


def test_nan_features_are_never_cached(images):
    class NanExtractor(CountingExtractor):
        def extract(self, *a, **kw):
            out = super().extract(*a, **kw)
            out[0, 0, 0] = np.nan
            return out

    ex = NanExtractor()
    cached_features(images, ex, BACKBONE, PREP, ("orig",))
    assert list(features_dir().glob("*.safetensors")) == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("damage", ["random bytes", "random bytes, valid checksum"])
def test_damaged_cached_backbone_graph_is_exported_again(tmp_path, damage):
    pytest.importorskip("onnxruntime")
    from sortnet.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("conv8 bn conv16x3s2 bn gap", 3, 2, 32, (0.5,) * 3, (0.25,) * 3).eval()
    pixels = np.random.default_rng(1).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    graph = tmp_path / "backbone.onnx"
    first = FeatureExtractor(model, torch.device("cpu"), onnx_cache=graph).extract(pixels, ("orig",))
    junk = np.random.default_rng(2).bytes(4096)
    if damage == "random bytes":
        graph.write_bytes(junk)
    else:
        write_entry(graph, junk)
    again = FeatureExtractor(model, torch.device("cpu"), onnx_cache=graph)
    np.testing.assert_allclose(again.extract(pixels, ("orig",)), first, atol=1e-5)
    assert again.backend == "onnxruntime" and read_entry(graph) not in (None, junk)  # exported afresh


@pytest.mark.timeout(120)
def test_rewritten_check_cache_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    root = make_class_folder(tmp_path, classes=2, per_class=5)
    env = {"SORTNET_CACHE": str(tmp_path / "cache")}
    first = run_cli_bounded("check", root, "--json", env=env)
    cache = FactCache.for_root(root)
    forged = json.loads(read_entry(cache.file))
    for entry in forged["files"].values():
        entry[3] = {"error": "forged"}  # every file "unreadable", written as plain JSON without a checksum
    cache.file.write_text(json.dumps(forged))
    again = run_cli_bounded("check", root, "--json", env=env)
    assert again.returncode == first.returncode == 0, again.stderr
    assert "forged" not in again.stdout and json.loads(again.stdout)["computed"] == 10
