"""load_data / load_eval_data: dispatch, splits, fitted preprocessing, notes, class mapping."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import make_class_folder
from sortnet.data.errors import DataError
from sortnet.data.preprocess import Preprocessing, image_to_array
from sortnet.data.sources import (BUILTIN_NAMES, border_background, channel_stats, load_data, load_eval_data,
                                  stratified_split)


def test_stratified_split_properties():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 2 + [3])
    tr, va = stratified_split(labels, 0.2, seed=3)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(labels)
    counts = np.bincount(labels[va], minlength=4).tolist()
    assert counts == [2, 1, 1, 0]  # >= 1 val per class with >= 2 images; singleton stays in train
    tr2, va2 = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(va, va2) and np.array_equal(tr, tr2)
    _, va3 = stratified_split(np.repeat(np.arange(5), 40), 0.2, seed=4)
    assert not np.array_equal(va3, stratified_split(np.repeat(np.arange(5), 40), 0.2, seed=5)[1])
    assert len(stratified_split(labels, 0.0, 0)[1]) == 0
    with pytest.raises(DataError):
        stratified_split(labels, 1.0, 0)


def test_stats_and_background():
    imgs = np.zeros((4, 3, 6, 6), np.uint8)
    imgs[:, 0] = 255
    mean, std = channel_stats(imgs)
    assert mean == pytest.approx((1.0, 0.0, 0.0)) and std == pytest.approx((1.0, 1.0, 1.0))  # constant -> 1
    assert border_background(imgs) == "dark"
    assert border_background(np.full((2, 1, 5, 5), 200, np.uint8)) == "light"


def test_load_folder_bundle(tmp_path):
    root = make_class_folder(tmp_path, classes=3, per_class=10, size=16)
    b = load_data(str(root), progress=False)
    assert b.classes == ["class_0", "class_1", "class_2"] and b.source == f"folder:{root.resolve()}"
    assert (len(b.train), len(b.val), b.test) == (24, 6, None)
    assert b.val.class_counts() == {"class_0": 2, "class_1": 2, "class_2": 2}
    p = b.preprocessing
    assert (p.img_size, p.channels, p.background) == (16, 3, "dark")
    assert np.allclose(p.mean, b.train.images.mean(axis=(0, 2, 3)) / 255, atol=1e-6)
    assert any("20% stratified split of train, seed 0" in n for n in b.notes)
    assert any("img_size 16 chosen from median image size" in n for n in b.notes)
    again = load_data(str(root), progress=False)
    assert again.val.paths == b.val.paths
    other = load_data(str(root), progress=False, seed=1)
    assert other.val.paths != b.val.paths


def test_load_folder_with_val_and_test(tmp_path):
    root = make_class_folder(tmp_path, classes=2, size=12, mode="L", splits={"train": 5, "val": 2, "test": 3})
    b = load_data(str(root), progress=False)
    assert (len(b.train), len(b.val), len(b.test)) == (10, 4, 6) and b.preprocessing.channels == 1
    assert any("val/ folder" in n for n in b.notes) and any("test/ folder" in n for n in b.notes)


def test_unknown_source_lists_builtins(tmp_path):
    with pytest.raises(DataError) as e:
        load_data(str(tmp_path / "nope"), progress=False)
    msg = str(e.value)
    assert "does not exist" in msg and all(name in msg for name in BUILTIN_NAMES)


def test_builtin_digits_converted_like_files():
    b = load_data("digits", img_size=16, channels=3, progress=False, seed=2)
    assert b.source == "builtin:digits" and b.train.images.shape[1:] == (3, 16, 16)
    assert b.preprocessing.img_size == 16 and len(b.test) == 360
    native = load_data("digits", progress=False, seed=2)
    assert native.train.images.shape[1:] == (1, 8, 8) and np.array_equal(native.train.labels, b.train.labels)
    expected = image_to_array(Image.fromarray(native.test.images[0, 0]), b.preprocessing)
    assert np.array_equal(b.test.images[0], expected)


def test_eval_folder_maps_classes_by_name(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=3, size=10)
    prep = Preprocessing(img_size=8, channels=1)
    s, skipped = load_eval_data(str(root), prep, ["zzz", "class_1", "class_0"], progress=False)
    assert s.images.shape == (6, 1, 8, 8) and not skipped
    assert s.class_counts() == {"zzz": 0, "class_1": 3, "class_0": 3}
    with pytest.raises(DataError) as e:
        load_eval_data(str(root), prep, ["class_0", "cat"], progress=False)
    assert "class_1" in str(e.value) and "cat" in str(e.value)


def test_eval_builtin_uses_test_split():
    prep = Preprocessing(img_size=8, channels=1)
    classes = [str(i) for i in range(10)]
    s, skipped = load_eval_data("digits", prep, classes[::-1], progress=False)
    ref, _ = load_eval_data("digits", prep, classes, progress=False)
    assert len(s) == 360 and skipped == [] and np.array_equal(s.labels, 9 - ref.labels)
    with pytest.raises(DataError, match="not classes of this model"):
        load_eval_data("digits", prep, ["cat", "dog"], progress=False)
