"""`sortnet check`: what it reports for the bad-file corpus, duplicates and leakage, its cache, and exit codes."""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
from PIL import Image

from badfiles import write_bad_files
from clirun import run_cli
from conftest import make_class_folder, make_image
from sortnet.data.check import run_check
from sortnet.data.check_report import format_report
from sortnet.data.cacheentry import read_entry
from sortnet.data.filecache import FactCache


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))


def _snapshot(root) -> dict:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            st = os.stat(p)
            out[p] = (st.st_size, st.st_mtime_ns, hashlib.sha256(open(p, "rb").read()).hexdigest())
    return out


def test_bad_file_corpus_reasons(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=12)
    expected = write_bad_files(root / "class_0")
    before = _snapshot(root)
    r = run_check(str(root)).report
    assert _snapshot(root) == before  # never modifies user files
    reasons = {os.path.basename(u["path"]): u["reason"] for u in r["unreadable"]}
    for name, want in expected.items():
        if want is None:
            assert name not in reasons, (name, reasons.get(name))
        else:
            assert want in reasons[name]
    assert r["ok"] and not r["fatal"]
    assert r["images"]["exif_rotated"] == 1 and r["images"]["animated"] == 1
    assert any(p.endswith("one_pixel.png") for p in r["images"]["tiny"])
    assert {"CMYK", "I;16", "RGBA", "P"} <= set(r["images"]["modes"])
    assert r["classes"]["train"]["class_0"]["files"] == 12 + len(expected)
    text = format_report(r)
    assert "truncated image data" in text and "zero-byte file" in text and "EXIF-rotated: 1" in text


def test_hidden_and_stray_files_are_listed_not_classes(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=10)
    (root / ".DS_Store").write_bytes(b"\0\0")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / "class_0" / ".hidden.png").write_bytes(b"x")
    (root / "README.txt").write_text("notes")
    (root / "stray.jpg").write_bytes(b"not really")
    (root / "class_1" / "notes.txt").write_text("notes")
    r = run_check(str(root)).report
    assert set(r["classes"]["train"]) == {"class_0", "class_1"}
    names = {os.path.basename(p) for p in r["hidden"]}
    assert {".DS_Store", ".git", ".hidden.png"} <= names
    stray = {os.path.basename(p) for p in r["stray"]}
    assert {"README.txt", "stray.jpg", "notes.txt"} <= stray


def test_duplicates_within_across_classes_and_splits(tmp_path):
    root = make_class_folder(tmp_path, classes=2, splits={"train": 10, "test": 3})
    train0, train1, test0 = root / "train" / "class_0", root / "train" / "class_1", root / "test" / "class_0"
    shutil.copy(train0 / "img_000.png", train0 / "copy.png")  # within class
    shutil.copy(train0 / "img_001.png", train1 / "conflict.png")  # across classes
    shutil.copy(train0 / "img_002.png", test0 / "leak.png")  # across splits
    big = make_image(1, 64)  # near-duplicate: same picture re-encoded as JPEG at another size
    big.save(train1 / "big.png")
    big.resize((48, 48), Image.BILINEAR).save(train1 / "small.jpg", quality=90)
    result = run_check(str(root))
    kinds = {}
    for s in result.report["duplicates"]["exact"]:
        kinds[frozenset(os.path.basename(f) for f in s["files"])] = s["kind"]
    assert kinds[frozenset({"img_000.png", "copy.png"})] == "within class"
    assert kinds[frozenset({"img_001.png", "conflict.png"})] == "across classes"
    assert kinds[frozenset({"img_002.png", "leak.png"})] == "across splits"
    near = [{os.path.basename(f) for f in s["files"]} for s in result.report["duplicates"]["near"]]
    assert {"big.png", "small.jpg"} in near
    warnings = " ".join(result.warnings)
    assert "conflicting labels" in warnings and "leakage" in warnings
    assert result.dup_ids[str(train1 / "big.png")] == result.dup_ids[str(train1 / "small.jpg")]


def test_cache_reused_and_invalidated_by_same_size_edit(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=10)
    first = run_check(str(root)).report
    assert first["computed"] == 20 and first["cached"] == 0
    assert run_check(str(root)).report["computed"] == 0
    cache_file = FactCache.for_root(root).file
    assert cache_file.exists() and json.loads(read_entry(cache_file))["version"] >= 1  # JSON, no pickle
    victim = root / "class_0" / "img_003.png"
    data = bytearray(victim.read_bytes())
    data[-20:-12] = b"\xff" * 8  # corrupt the last chunk's bytes, same file size
    st = victim.stat()
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # coarse clocks: make the edit visible
    assert victim.stat().st_size == st.st_size
    again = run_check(str(root)).report
    assert again["computed"] == 1
    assert any(u["path"] == str(victim) for u in again["unreadable"])


def test_fatal_problems_and_exit_status(tmp_path):
    one = make_class_folder(tmp_path, classes=1, per_class=3, name="one")
    assert run_check(str(one)).fatal
    empty_class = make_class_folder(tmp_path, classes=2, per_class=3, name="bad")
    for f in (empty_class / "class_1").iterdir():
        f.write_bytes(b"")
    res = run_check(str(empty_class))
    assert any("class_1" in m for m in res.fatal)
    proc = run_cli("check", empty_class, check=False, timeout=120)
    assert proc.returncode == 1 and "FATAL" in proc.stdout
    good = make_class_folder(tmp_path, classes=2, per_class=3, name="good")
    proc = run_cli("check", good, "--json", timeout=120)
    report = json.loads(proc.stdout)
    assert report["ok"] and report["few_images"] == ["class_0", "class_1"]
    assert run_cli("check", tmp_path / "nope", check=False, timeout=120).returncode == 2


def test_public_api_check(tmp_path):
    import sortnet

    root = make_class_folder(tmp_path, classes=2, per_class=4)
    report = sortnet.check(root)
    assert report["files"] == 8 and report["readable"] == 8
