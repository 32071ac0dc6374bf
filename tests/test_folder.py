"""Folder layouts, skip rules, error messages, auto size/channels and parallel decoding."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from badfiles import write_bad_files
from conftest import make_class_folder
from sortnet.data.errors import DataError
from sortnet.data.folder import choose_size_channels, decode_files, read_folder_eval, scan_folder
from sortnet.data.listsource import read_folder
from sortnet.data.preprocess import Preprocessing


def test_flat_layout_and_hidden_and_non_images(tmp_path):
    root = make_class_folder(tmp_path, classes=3, per_class=5, size=12)
    (root / ".hidden_class").mkdir()
    Image.new("RGB", (8, 8)).save(root / ".hidden_class" / "x.png")
    Image.new("RGB", (8, 8)).save(root / "class_0" / ".secret.png")
    (root / "class_0" / "notes.txt").write_text("hi")
    (root / "README.md").write_text("root files are ignored")
    (root / "class_1" / "nested").mkdir()
    Image.new("RGB", (12, 12)).save(root / "class_1" / "nested" / "deep.png")
    fd = read_folder(root)
    assert fd.classes == ["class_0", "class_1", "class_2"]
    assert fd.layout == "flat" and fd.val is None and fd.test is None
    assert fd.train.class_counts() == {"class_0": 5, "class_1": 6, "class_2": 5}
    assert [(s.path.endswith("notes.txt"), s.reason) for s in fd.skipped] == [(True, "not an image extension")]
    assert fd.train.images.shape[1:] == (3, 12, 12)


def test_train_val_test_layout(tmp_path):
    root = make_class_folder(tmp_path, classes=2, size=10, splits={"train": 6, "valid": 2, "test": 3})
    fd = read_folder(root)
    assert fd.layout == "split" and fd.val_dir == "valid"
    assert (len(fd.train), len(fd.val), len(fd.test)) == (12, 4, 6)
    assert fd.test.class_counts() == {"class_0": 3, "class_1": 3}
    images, skipped, split = read_folder_eval(root, Preprocessing(10, 3), ["class_1", "class_0", "other"])
    assert split == "test" and len(images) == 6 and not skipped
    assert sorted(np.unique(images.labels)) == [0, 1] and images.classes == ["class_1", "class_0", "other"]
    assert all(("class_1" in p) == (lab == 0) for p, lab in zip(images.paths, images.labels))


def test_bad_files_skipped_never_fatal(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=4, size=16)
    expected = write_bad_files(root / "class_0")
    fd = read_folder(root, img_size=16, channels=3)
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in fd.skipped}
    for name, reason in expected.items():
        if reason is None:
            assert name not in reasons
        else:
            assert reason in reasons[name]
    good = sum(r is None for r in expected.values())
    assert fd.train.class_counts() == {"class_0": 4 + good, "class_1": 4}


@pytest.mark.parametrize("setup, message", [
    (lambda r: None, "does not exist"),
    (lambda r: r.mkdir(), "no class folders"),
    (lambda r: (r.mkdir(), Image.new("L", (4, 4)).save(r / "a.png")), "one sub-folder per class"),
    (lambda r: (r.mkdir(), (r / "only").mkdir(), Image.new("L", (4, 4)).save(r / "only" / "a.png")),
     "only one class"),
    (lambda r: (r.mkdir(), (r / "a").mkdir(), (r / "b").mkdir(), Image.new("L", (4, 4)).save(r / "a" / "1.png")),
     "has no image files"),
])
def test_layout_errors_explain_layout(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DataError) as e:
        read_folder(root)
    assert message in str(e.value)
    assert "DATA/<class>/" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_class_with_only_bad_files_is_an_error(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=3)
    for p in (root / "class_1").iterdir():
        p.write_bytes(b"")
    with pytest.raises(DataError, match="class_1"):
        read_folder(root)


def test_val_test_classes_must_exist_in_train(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=2, splits={"train": 2, "test": 1})
    shutil.copytree(root / "test" / "class_0", root / "test" / "zebra")
    with pytest.raises(DataError, match="zebra"):
        read_folder(root)
    with pytest.raises(DataError, match="zebra"):
        read_folder_eval(root, Preprocessing(16, 3), ["class_0", "class_1"])


def test_auto_channels_and_size(tmp_path):
    grey = make_class_folder(tmp_path, classes=2, per_class=3, size=20, mode="L", name="grey")
    paths = [str(p) for p in sorted(grey.rglob("*.png"))]
    size, chans, notes = choose_size_channels(paths, None, None)
    assert (size, chans) == (20, 1) and any("img_size 20" in n for n in notes)
    big = tmp_path / "big"
    for c in ("a", "b"):
        (big / c).mkdir(parents=True)
        Image.new("RGB", (200, 100)).save(big / c / "x.png")
    fd = read_folder(big)
    assert (fd.img_size, fd.channels) == (128, 3)
    assert read_folder(big, img_size=24, channels=1).train.images.shape[1:] == (1, 24, 24)


def test_parallel_decode_matches_serial(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=110, size=8)
    paths = [str(p) for p in sorted(root.rglob("*.png"))]
    (root / "class_0" / "broken.png").write_bytes(b"junk")
    paths.insert(5, str(root / "class_0" / "broken.png"))
    prep = Preprocessing(8, 3)
    par, kept_p, skipped_p = decode_files(paths, prep, workers=2)  # 221 files > threshold: process pool
    ser, kept_s, skipped_s = decode_files(paths, prep, workers=1)
    assert np.array_equal(par, ser) and np.array_equal(kept_p, kept_s) and len(par) == 220
    assert [s.path for s in skipped_p] == [paths[5]] and 5 not in kept_p


def test_scan_is_sorted_and_deterministic(class_folder):
    a, b = scan_folder(class_folder), scan_folder(class_folder)
    assert a.splits == b.splits
    files = a.splits["train"]["class_0"]
    assert files == sorted(files)
