"""`sortnet datasets --fetch` decision table (issue 8.6), driven by a fake machine: never runs apt or the network."""
from __future__ import annotations

import dataclasses
import gzip

import pytest

import sortnet.data.builtin as builtin
from sortnet.data.builtin import DATASETS, IDX_FILES
from sortnet.data.errors import DataError
from sortnet.data.fetch import apt_prefix, fetch_dataset, plan_fetch

FASHION = DATASETS["fashion-mnist"]


class FakeSystem:
    """programs on PATH, root or not, and the exit status of each command (recorded in .ran)."""

    def __init__(self, programs=("apt-get",), root=False, sudo_ok=False, apt_ok=True, on_install=None):
        self.programs, self.root, self.sudo_ok, self.apt_ok, self.on_install = set(programs), root, sudo_ok, apt_ok, \
            on_install
        self.ran: list[list[str]] = []

    def which(self, program):
        return f"/usr/bin/{program}" if program in self.programs else None

    def is_root(self):
        return self.root

    def run(self, argv):
        self.ran.append(list(argv))
        if argv[:3] == ["sudo", "-n", "true"]:
            return 0 if self.sudo_ok else 1
        if "install" in argv and self.apt_ok and self.on_install:
            self.on_install()
        return 0 if self.apt_ok else 100


@pytest.fixture
def nowhere(tmp_path):
    """An empty data root and a Debian folder that does not exist yet (as on a fresh machine)."""
    spec = dataclasses.replace(FASHION, system_dir=tmp_path / "usr-share" / "fashion-mnist")
    return {"root": tmp_path / "data", "spec": spec}


def _install_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES:
        (folder / name).write_bytes(gzip.compress(b"x"))


@pytest.mark.parametrize("system, download, allow_apt, expected", [
    (FakeSystem(root=True), True, True, ["apt", "download"]),              # root: apt first, then download
    (FakeSystem(sudo_ok=True, programs=("apt-get", "sudo")), True, True, ["apt", "download"]),  # passwordless sudo
    (FakeSystem(sudo_ok=False, programs=("apt-get", "sudo")), True, True, ["download"]),  # sudo would prompt
    (FakeSystem(root=False, programs=("apt-get",)), True, True, ["download"]),  # no sudo at all
    (FakeSystem(root=True, programs=()), True, True, ["download"]),        # no apt (not Debian)
    (FakeSystem(root=True), True, False, ["download"]),                     # --no-apt
    (FakeSystem(root=True), False, True, ["apt"]),                          # --no-download
    (FakeSystem(root=False, programs=()), False, True, []),                 # nothing possible: instructions
])
def test_decision_table(nowhere, system, download, allow_apt, expected):
    assert plan_fetch(nowhere["spec"], nowhere["root"], download=download, allow_apt=allow_apt,
                      system=system) == expected
    assert not any("install" in cmd for cmd in system.ran)  # planning never installs


def test_present_files_need_nothing(nowhere):
    _install_files(nowhere["root"] / "fashion-mnist")
    system = FakeSystem(root=True)
    assert plan_fetch(nowhere["spec"], nowhere["root"], download=True, allow_apt=True, system=system) == ["present"]
    assert plan_fetch(DATASETS["digits"], nowhere["root"], download=False, allow_apt=False, system=system) == \
        ["present"]
    assert apt_prefix(FakeSystem(root=True)) == [] and apt_prefix(FakeSystem(programs=())) is None
    assert apt_prefix(FakeSystem(programs=("apt-get", "sudo"), sudo_ok=True)) == ["sudo", "-n"]


def _use_spec(monkeypatch, spec):
    monkeypatch.setitem(DATASETS, "fashion-mnist", spec)


def test_apt_installs_then_files_found(nowhere, monkeypatch):
    _use_spec(monkeypatch, nowhere["spec"])
    system = FakeSystem(programs=("apt-get", "sudo"), sudo_ok=True,
                        on_install=lambda: _install_files(nowhere["spec"].system_dir))
    folder = fetch_dataset("fashion-mnist", nowhere["root"], system=system)
    assert folder == nowhere["spec"].system_dir
    installs = [cmd for cmd in system.ran if "install" in cmd]
    assert installs == [["sudo", "-n", "apt-get", "install", "-y", "-q", "--no-install-recommends",
                         "dataset-fashion-mnist"]]


def test_apt_fails_falls_back_to_download(nowhere, monkeypatch):
    _use_spec(monkeypatch, nowhere["spec"])
    fetched = []

    def fake_download(url, dest, md5, progress):
        fetched.append(dest.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"ok")

    monkeypatch.setattr(builtin, "_download", fake_download)
    system = FakeSystem(root=True, apt_ok=False)
    folder = fetch_dataset("fashion-mnist", nowhere["root"], system=system)
    assert folder == nowhere["root"] / "fashion-mnist" and fetched == list(IDX_FILES)
    assert [c[:2] for c in system.ran] == [["apt-get", "install"], ["apt-get", "update"]]  # update, no retry


def test_everything_fails_says_exactly_what_to_do(nowhere, monkeypatch):
    _use_spec(monkeypatch, nowhere["spec"])

    def offline(url, dest, md5, progress):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(builtin, "_download", offline)
    with pytest.raises(DataError) as info:
        fetch_dataset("fashion-mnist", nowhere["root"], system=FakeSystem(root=True, apt_ok=False))
    text = str(info.value)
    assert "sudo apt-get install dataset-fashion-mnist" in text and "apt-get install" in text.splitlines()[0]
    assert f"put them in {nowhere['root'] / 'fashion-mnist'}/" in text and "name resolution" in text
    for name, url, _ in FASHION.files:
        assert f"{name}  <-  {url}" in text
    with pytest.raises(DataError, match="download disabled"):
        fetch_dataset("fashion-mnist", nowhere["root"], download=False, system=FakeSystem(programs=()))
    with pytest.raises(DataError, match="unknown built-in dataset"):
        fetch_dataset("imagenet", nowhere["root"], system=FakeSystem())
