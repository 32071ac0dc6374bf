"""Outputs the user names (issue 18, case 1): `export --out` and `ensemble --out` write a NEW regular file
only; an existing file, the input model, a folder, a symbolic link, a device node or a FIFO is refused with
one line and left exactly as it was. Every writer (sortnet.atomic) refuses non-regular targets; a full
disk is one clear line (case 6)."""
from __future__ import annotations

import errno
import os
import stat
import subprocess

import pytest

from clirun import one_line_error, run_cli_bounded
from conftest import make_class_folder
from modelkit import make_model_file
from sortnet.cli.main import main
from sortnet.training.checkpoint import load_checkpoint
from sortnet.atomic import OutputError, atomic_path, atomic_write_bytes, remove_stale_temps


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model_file(tmp_path_factory.mktemp("outputs") / "m.safetensors", "linear", 3, 8)


@pytest.mark.timeout(120)
def test_export_out_never_replaces_anything(model, tmp_path, capsys):
    pytest.importorskip("onnx")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    model_bytes = model.read_bytes()
    folder = tmp_path / "folder"
    folder.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link.onnx"
    link.symlink_to(notes)
    dangling = tmp_path / "dangling.onnx"
    dangling.symlink_to(tmp_path / "nowhere.onnx")
    cases = {notes: "already exists", model: "input file", folder: "is a folder", fifo: "device, FIFO",
             link: "symbolic link", dangling: "symbolic link"}
    if os.geteuid() == 0:  # a copy of /dev/null, made as root with mknod
        node = tmp_path / "null"
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        cases[node] = "device, FIFO"
    for target, needle in cases.items():  # in this process (each CLI start costs seconds), one line each
        assert main(["export", str(model), "--out", str(target)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0] and str(target) in err[0], (target, err)
    one_line_error(run_cli_bounded("export", model, "--out", notes, timeout=60), "already exists")  # the CLI
    assert notes.read_text() == "my notes" and model.read_bytes() == model_bytes
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink() and os.readlink(link) == str(notes)
    assert not (tmp_path / "nowhere.onnx").exists() and list(folder.iterdir()) == []
    if "node" in locals():
        assert stat.S_ISCHR(os.lstat(node).st_mode)
    fresh = tmp_path / "new" / "m.onnx"
    assert main(["export", str(model), "--out", str(fresh)]) == 0 and fresh.stat().st_size > 0
    assert main(["export", str(model), "--out", str(fresh)]) == 2 and "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.glob("**/.*.tmp")) == []  # no temporary file left behind


@pytest.mark.timeout(120)
def test_ensemble_out_is_a_new_file_only(model, tmp_path):
    mine = tmp_path / "mine.safetensors"
    mine.write_text("mine")
    one_line_error(run_cli_bounded("ensemble", model, "--out", mine), "already exists")
    assert mine.read_text() == "mine"
    assert main(["ensemble", str(model), "--out", str(model)]) == 2


def test_every_writer_refuses_non_regular_targets(tmp_path):
    target = tmp_path / "f"
    target.write_text("old")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OutputError, match="symbolic link"):
        atomic_write_bytes(link, b"new")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OutputError, match="FIFO"):
        atomic_write_bytes(tmp_path / "fifo", b"new")
    atomic_write_bytes(target, b"new")  # an internal writer replaces its own regular file
    assert target.read_bytes() == b"new" and link.is_symlink()
    with pytest.raises(OutputError, match="already exists"):
        atomic_write_bytes(target, b"x", new=True)


def test_new_output_created_meanwhile_is_not_replaced(tmp_path):
    target = tmp_path / "out.onnx"
    with pytest.raises(OutputError, match="already exists"):
        with atomic_path(target, new=True) as tmp:
            tmp.write_bytes(b"ours")
            target.write_bytes(b"someone else's")  # appears between the check and the publish
    assert target.read_bytes() == b"someone else's" and list(tmp_path.glob(".*.tmp")) == []


def test_disk_full_is_one_clear_error_and_target_kept(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"good")

    with pytest.raises(OutputError, match=r"no space left on device at .*free some space or use --out elsewhere"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what write() says on a full disk
    assert target.read_bytes() == b"good" and list(tmp_path.glob(".*.tmp")) == []


def test_stale_temporary_files_are_removed(tmp_path):
    stale = tmp_path / ".model.safetensors.abc123.tmp"
    stale.write_bytes(b"half a model")
    other = tmp_path / ".notes.txt.abc.tmp"
    other.write_bytes(b"not ours")
    assert remove_stale_temps(tmp_path, ["model.safetensors"]) == [stale]
    assert not stale.exists() and other.exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (root only; skipped where it cannot be mounted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.timeout(240)
def test_disk_filling_during_training_is_one_line_and_files_stay_correct(small_disk, tmp_path):
    data = make_class_folder(tmp_path, classes=3, per_class=20, size=32)
    run = small_disk / "run"  # the first checkpoint (1.2 MB) fits, the second one does not
    proc = run_cli_bounded("train", data, "--out", run, "--model", "flatten dense32", "--epochs", "3", "--no-check",
                           "--no-progress", timeout=200)
    one_line_error(proc, f"no space left on device at {run}", "free some space or use --out elsewhere")
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] >= 1  # the last complete checkpoint, readable
    assert not list(run.glob(".*.tmp")) and not (run / "model.safetensors").exists()


def test_dataset_export_never_replaces_files(tmp_path):
    pytest.importorskip("sklearn")
    from sortnet.data.export_images import export_images

    written = export_images("digits", tmp_path / "imgs", limit=3, download=False)
    assert len(written) == 3 and all(p.stat().st_size > 0 for p in written)
    written[1].write_bytes(b"edited by the user")
    with pytest.raises(OutputError, match="already exists"):
        export_images("digits", tmp_path / "imgs", limit=3, download=False)
    assert written[1].read_bytes() == b"edited by the user"
