"""Hostile folders (issue 14, cases 2 and 3): symlink loops, links out of the data root, FIFOs, devices,
sockets and huge sparse files end in a skip with a reason within seconds and bounded memory.

Every folder is generated in tmp_path; the CLI runs under a timeout and an address-space limit
(clirun.run_cli_bounded), so a regression shows as a failure, not a frozen machine.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import tracemalloc
from pathlib import Path

import pytest

from clirun import run_cli_bounded
from conftest import make_class_folder
from sortnet.data.decode import BadImageError, decode_image, probe_image
from sortnet.data.filecache import HASH_CHUNK, compute_facts
from sortnet.data.folder import scan_folder
from sortnet.data.walk import Walker

PER_CLASS = 12
SPARSE_BYTES = 3 << 30  # a "3 GB photo": sparse, so it costs no disk


def _hostile(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A 3-class folder plus every hostile entry; returns (root, {relative path: expected reason substring})."""
    root = make_class_folder(tmp_path, classes=3, per_class=PER_CLASS)
    outside = make_class_folder(tmp_path, classes=1, per_class=3, name="outside")
    os.symlink(".", root / "class_0" / "l1")
    os.symlink(".", root / "class_0" / "l2")
    os.symlink("..", root / "class_1" / "up")
    os.symlink("../class_0", root / "class_2" / "other_class")
    os.symlink(outside / "class_0", root / "class_1" / "elsewhere")
    os.symlink("missing.png", root / "class_1" / "dangling.png")
    os.mkfifo(root / "class_2" / "x.png")
    os.symlink("/dev/zero", root / "class_2" / "zero.png")
    with open(root / "class_2" / "big.png", "wb") as f:
        f.truncate(SPARSE_BYTES)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "class_2" / "sock.png"))
    sock.close()  # the socket file stays
    loop = "folder already read"
    return root, {"class_0/l1": loop, "class_0/l2": loop, "class_1/up": loop, "class_2/other_class": loop,
                  "class_1/elsewhere": "outside the data folder", "class_1/dangling.png": "dangling symbolic link",
                  "class_2/x.png": "not a regular file (FIFO)", "class_2/zero.png": "outside the data folder",
                  "class_2/big.png": "file too large", "class_2/sock.png": "not a regular file (socket)"}


def _by_rel(root: Path, entries) -> dict[str, str]:
    return {os.path.relpath(e["path"], root): e["reason"] for e in entries}


def _assert_reasons(got: dict[str, str], expected: dict[str, str]) -> None:
    assert sorted(got) == sorted(expected)
    for rel, reason in expected.items():
        assert reason in got[rel], (rel, got[rel])


@pytest.mark.timeout(30)
def test_scan_reads_each_real_folder_once_and_only_regular_files(tmp_path):
    root, expected = _hostile(tmp_path)
    scan = scan_folder(root)
    assert {c: len(v) for c, v in scan.splits["train"].items()} == {f"class_{i}": PER_CLASS for i in range(3)}
    _assert_reasons(_by_rel(root, [s.to_dict() for s in scan.skipped]), expected)


@pytest.mark.timeout(30)
def test_follow_links_reads_outside_links_but_still_no_devices(tmp_path):
    root, _ = _hostile(tmp_path)
    scan = scan_folder(root, follow_links=True)
    counts = {c: len(v) for c, v in scan.splits["train"].items()}
    assert counts == {"class_0": PER_CLASS, "class_1": PER_CLASS + 3, "class_2": PER_CLASS}  # + outside's 3
    reasons = _by_rel(root, [s.to_dict() for s in scan.skipped])
    assert reasons["class_2/zero.png"] == "not a regular file (character device)"
    assert "class_1/elsewhere" not in reasons and "folder already read" in reasons["class_1/up"]


@pytest.mark.timeout(30)
def test_link_cycles_and_links_between_classes(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=3)
    os.symlink("b", root / "class_0" / "a")  # a -> b -> a: the OS reports a link loop
    os.symlink("a", root / "class_0" / "b")
    os.symlink("../class_1", root / "class_0" / "zz")  # into another class: never a second copy
    os.symlink("class_0", root / "alias")  # a second class folder that is the same real folder
    walker = Walker(root)
    scan = scan_folder(root)
    assert sorted(scan.splits["train"]) == ["class_0", "class_1"]
    assert all(len(v) == 3 for v in scan.splits["train"].values())
    reasons = _by_rel(root, [s.to_dict() for s in scan.skipped])
    assert reasons["class_0/a"] == reasons["class_0/b"] == "symbolic link loop"
    assert "folder already read" in reasons["class_0/zz"] and "folder already read" in reasons["alias"]
    assert walker.files(root / "class_1") == sorted(str(p) for p in (root / "class_1").iterdir())


@pytest.mark.timeout(30)
def test_decoder_refuses_special_and_oversized_files_from_stat(tmp_path):
    _, _ = _hostile(tmp_path)
    c2 = tmp_path / "data" / "class_2"
    for name, reason in [("x.png", "not a regular file (FIFO)"), ("zero.png", "not a regular file (character device)"),
                         ("sock.png", "not a regular file (socket)"), ("big.png", "file too large: 3,072 MiB")]:
        for read in (decode_image, probe_image):
            with pytest.raises(BadImageError) as e:
                read(c2 / name)  # opened non-blocking and refused from fstat: no hang, no read
            assert e.value.reason.startswith(reason), (name, e.value.reason)


def test_size_cap_is_configurable(tmp_path, monkeypatch):
    root = make_class_folder(tmp_path, classes=2, per_class=2)
    one = root / "class_0" / "img_000.png"
    decode_image(one)
    monkeypatch.setenv("SORTNET_MAX_FILE_MB", str(one.stat().st_size / 2**20 / 2))  # half the file's size
    with pytest.raises(BadImageError, match="file too large.*SORTNET_MAX_FILE_MB"):
        decode_image(one)
    assert len(scan_folder(root).skipped) == 4 and scan_folder(root).splits["train"]["class_0"] == []


def test_hashing_is_streamed(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_MAX_FILE_MB", "1024")
    size = 256 << 20
    path = tmp_path / "huge.png"
    with open(path, "wb") as f:
        f.truncate(size)  # sparse zeros
    ref = hashlib.sha256()
    for _ in range(size // HASH_CHUNK):
        ref.update(bytes(HASH_CHUNK))
    tracemalloc.start()
    try:
        facts = compute_facts(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert facts["sha256"] == ref.hexdigest() and facts["error"].startswith("not an image")
    assert peak < 16 << 20, f"hashing a 256 MiB file allocated {peak / 2**20:.0f} MiB"


def test_check_cli_on_hostile_folder(tmp_path):
    root, expected = _hostile(tmp_path)
    proc = run_cli_bounded("check", root, "--json", env={"SORTNET_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {c: e["readable"] for c, e in report["classes"]["train"].items()} == \
        {f"class_{i}": PER_CLASS for i in range(3)}
    _assert_reasons(_by_rel(root, report["not_read"]), expected)
    assert report["unreadable"] == []


def test_train_evaluate_predict_cli_on_hostile_folder(tmp_path):
    root, expected = _hostile(tmp_path)
    env = {"SORTNET_CACHE": str(tmp_path / "cache")}
    run = tmp_path / "run"
    proc = run_cli_bounded("train", root, "--no-check", "--epochs", "1", "--model", "linear", "--out", run,
                           "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    _assert_reasons(_by_rel(root, metrics["skipped_files"]), expected)
    proc = run_cli_bounded("evaluate", run / "model.safetensors", root, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    evaluated = json.loads(proc.stdout)
    assert evaluated["num_images"] == 3 * PER_CLASS
    _assert_reasons(_by_rel(root, evaluated["skipped_files"]), expected)
    proc = run_cli_bounded("predict", run / "model.safetensors", root, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert sum(1 for r in rows if not r.get("error")) == 3 * PER_CLASS
    _assert_reasons(_by_rel(root, [{"path": r["path"], "reason": r["error"]} for r in rows if r.get("error")]),
                    expected)
