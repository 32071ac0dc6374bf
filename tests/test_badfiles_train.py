"""The bad-file corpus end to end: `check` names every problem and `train` still completes."""
from __future__ import annotations

import json
import os

import pytest
import torch

import sortnet.data.folder as folder
import sortnet.data.listsource as listsource
from badfiles import write_bad_files
from conftest import make_class_folder
from sortnet.data.check import run_check
from sortnet.runs.train import train


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


@pytest.mark.parametrize("max_memory", ["auto", "0"])  # resident, and streamed from the ingest cache
def test_train_completes_on_bad_corpus_and_agrees_with_check(tmp_path, max_memory):
    root = make_class_folder(tmp_path, classes=2, per_class=12)
    expected = write_bad_files(root / "class_1")
    check = {os.path.basename(u["path"]): u["reason"] for u in run_check(str(root)).report["unreadable"]}
    clf = train(str(root), out=str(tmp_path / "run"), epochs=1, progress=False, model="linear",
                max_memory=max_memory)
    metrics = json.loads((clf.run_dir / "metrics.json").read_text())
    skipped = {os.path.basename(s["path"]): s["reason"] for s in metrics["skipped_files"]}
    for name, want in expected.items():
        if want is None:  # CMYK, 16-bit, RGBA, palette+transparency, EXIF-rotated, animated GIF, 1x1 ...
            assert name not in skipped and name not in check
        else:  # truncated, zero-byte, text named .jpg, header declaring a huge size
            assert want in skipped[name] and check[name] == skipped[name]


def test_file_vanishing_between_scan_and_training(tmp_path, monkeypatch):
    root = make_class_folder(tmp_path, classes=2, per_class=10)
    victim = root / "class_0" / "img_004.png"
    real_scan = folder.scan_folder

    def scan_then_delete(path, **kwargs):
        scan = real_scan(path, **kwargs)
        if victim.exists():
            victim.unlink()  # gone after the listing, before decoding
        return scan

    monkeypatch.setattr(listsource, "scan_folder", scan_then_delete)  # the one folder loader lists the files
    clf = train(str(root), out=str(tmp_path / "run"), epochs=1, progress=False, model="linear", check=False)
    skipped = json.loads((clf.run_dir / "metrics.json").read_text())["skipped_files"]
    assert skipped == [{"path": str(victim), "reason": "file vanished"}]


def test_vanished_file_listed_in_csv(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=10)
    rows = [f"class_{c}/img_{i:03d}.png,c{c}" for c in range(2) for i in range(10)] + ["class_0/gone.png,c0"]
    (root / "labels.csv").write_text("\n".join(rows))
    report = run_check(str(root / "labels.csv")).report
    assert report["unreadable"] == [{"path": str(root / "class_0" / "gone.png"), "reason": "file vanished"}]
    clf = train(str(root / "labels.csv"), out=str(tmp_path / "run"), epochs=1, progress=False, model="linear")
    assert len(json.loads((clf.run_dir / "metrics.json").read_text())["skipped_files"]) == 1


def test_permission_denied(tmp_path, monkeypatch):
    root = make_class_folder(tmp_path, classes=2, per_class=10)
    locked = root / "class_0" / "img_002.png"
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            # root (and CAP_DAC_OVERRIDE) reads mode-000 files; exercise the same code path by refusing the open
            real_open = os.open

            def refusing_open(path, *args, **kwargs):
                if os.fspath(path) == str(locked):
                    raise PermissionError(13, "Permission denied", str(locked))
                return real_open(path, *args, **kwargs)

            monkeypatch.setattr(os, "open", refusing_open)  # the check reads files through decode.open_regular
            report = run_check(str(root)).report
            assert report["unreadable"] == [{"path": str(locked), "reason": "permission denied"}]
            pytest.skip("running as root: mode 000 does not block reading, so train reads the file; "
                        "check's permission-denied path was tested with a refused open()")
        report = run_check(str(root)).report
        assert report["unreadable"] == [{"path": str(locked), "reason": "permission denied"}]
        clf = train(str(root), out=str(tmp_path / "run"), epochs=1, progress=False, model="linear")
        skipped = json.loads((clf.run_dir / "metrics.json").read_text())["skipped_files"]
        assert skipped == [{"path": str(locked), "reason": "permission denied"}]
    finally:
        locked.chmod(0o644)
