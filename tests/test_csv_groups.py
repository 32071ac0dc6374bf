"""Label CSVs, --group-by and duplicate-aware splits, and --balance."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from conftest import make_class_folder
from sortnet.data.csvsource import read_csv_source
from sortnet.data.errors import DataError
from sortnet.data.groups import grouped_split, merge_groups, regex_groups
from sortnet.data.sources import load_data
from sortnet.training.trainer import resolve_balance


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def _csv(root, header=True):
    lines = ["path,label,group"] if header else []
    for label, cls in enumerate(["class_0", "class_1"]):
        for i in range(20):
            lines.append(f"{cls}/img_{i:03d}.png,{cls.replace('class_', 'c')},owner{i // 4}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


def test_read_csv_header_and_positional(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=20)
    for header in (True, False):
        listed = read_csv_source(_csv(root, header))
        assert listed.classes == ["c0", "c1"] and len(listed.paths) == 40
        assert listed.paths[0] == str(root / "class_0" / "img_000.png")
        assert listed.groups[0] == "owner0"
    (root / "one.csv").write_text("a.png,x\n")
    with pytest.raises(DataError, match="at least two"):
        read_csv_source(root / "one.csv")


def test_csv_groups_never_straddle_the_split(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=20)
    b = load_data(str(_csv(root)), progress=False, val_fraction=0.25)
    assert b.source.startswith("csv:") and b.classes == ["c0", "c1"]
    train_groups = {(y, g) for y, g in zip(b.train.labels, b.train.groups)}
    val_groups = {(y, g) for y, g in zip(b.val.labels, b.val.groups)}
    assert train_groups and val_groups and not train_groups & val_groups
    assert len(b.train) + len(b.val) == 40


def test_group_by_regex_on_file_names(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=24)
    b = load_data(str(root), progress=False, group_by=r"img_0(\d)", val_fraction=0.2)  # 10-file groups
    def key(p):
        return (p.split("/")[-2], p.split("/")[-1][5])
    tr, va = {key(p) for p in b.train.paths}, {key(p) for p in b.val.paths}
    assert va and not tr & va
    assert any("--group-by" in n for n in b.notes)
    with pytest.raises(DataError, match="regular expression"):
        regex_groups(["a"], "(")


def test_duplicates_kept_on_one_side(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=20)
    for i in range(5):  # five exact copies of one picture
        shutil.copy(root / "class_0" / "img_000.png", root / "class_0" / f"dup_{i}.png")
    from sortnet.data.check import run_check

    dup = run_check(str(root)).dup_ids
    assert len([p for p in dup if "class_0" in p]) >= 6
    for seed in range(4):
        b = load_data(str(root), progress=False, seed=seed, dup_groups=dup)
        sides = {"train" if p in b.train.paths else "val" for p in dup}
        assert len(sides) == 1


def test_grouped_split_is_stratified_and_keeps_a_train_image():
    labels = np.repeat([0, 1, 2], [50, 30, 5])
    ids = np.arange(len(labels)) // 2  # pairs
    tr, va = grouped_split(labels, ids, 0.2, seed=1)
    assert len(np.intersect1d(ids[tr], ids[va])) == 0
    counts = np.bincount(labels[va], minlength=3)
    assert abs(counts[0] - 10) <= 2 and abs(counts[1] - 6) <= 2 and np.bincount(labels[tr], minlength=3).min() > 0
    one_group = grouped_split(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 0]), 0.5, 0)
    assert len(one_group[1]) == 0  # a single group cannot be split: all stays in train
    assert list(merge_groups(4, [["a", "b", "a", None], [None, "x", None, "x"]])) == [0, 1, 0, 1]


def test_balance_choice_and_training(tmp_path):
    assert resolve_balance("auto", [100, 10])[0] == "weights"
    assert resolve_balance("auto", [10, 11])[0] == "none"
    assert resolve_balance("sampler", [10, 11]) == ("sampler", "set by --balance")
    from sortnet.runs.train import train

    root = make_class_folder(tmp_path, classes=2, per_class=4)
    for i in range(4, 24):
        shutil.copy(root / "class_0" / "img_000.png", root / "class_0" / f"more_{i}.png")
    for balance in ("sampler", "weights"):
        clf = train(str(root), out=str(tmp_path / f"run_{balance}"), epochs=1, progress=False,
                            balance=balance, model="linear")
        assert clf is not None
