"""`sortnet datasets --fetch NAME`: put a built-in dataset's files on this machine, explicitly, once.

Decision (plan_fetch), in order; a step that fails falls through to the next:
    1. the files are already there (data root, or the Debian package's folder)  -> nothing to do
    2. a Debian package ships them (fashion-mnist: dataset-fashion-mnist), apt-get exists and may run
       without a prompt (root, or passwordless `sudo -n`), and apt is allowed     -> apt-get install
    3. downloading is allowed                                                       -> official download
    4. otherwise, or when every step failed                                         -> DataError saying
       exactly what to do: the apt command, and each file, its URL and the folder to put it in.

The machine is reached only through a `System` object (which, is_root, run), so tests drive the
decision table with fakes and never call apt.

Usage:
    folder = fetch_dataset("fashion-mnist")                        # Path of the folder holding the files
    steps = plan_fetch(DATASETS["fashion-mnist"], None, download=True, allow_apt=True, system=System())
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

from sortnet.data.builtin import DATASETS, DatasetSpec, builtin_name, default_data_root, download_missing, find_files
from sortnet.data.errors import DataError

APT_TIMEOUT_S = 900  # an install that hangs (a lock, a dead mirror) must not hang `make demo` forever


class System:
    """The real machine: programs on PATH, root or not, running a command without a terminal prompt."""

    def which(self, program: str) -> str | None:
        return shutil.which(program)

    def is_root(self) -> bool:
        return hasattr(os, "geteuid") and os.geteuid() == 0

    def run(self, argv: list[str]) -> int:
        """Exit status; stdin closed and DEBIAN_FRONTEND=noninteractive, so nothing can wait for an answer."""
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, env=env, timeout=APT_TIMEOUT_S).returncode
        except (OSError, subprocess.TimeoutExpired):
            return 127


def apt_prefix(system: System) -> list[str] | None:
    """[] as root, ["sudo", "-n"] with passwordless sudo, None when apt-get cannot run without a prompt."""
    if system.which("apt-get") is None:
        return None
    if system.is_root():
        return []
    if system.which("sudo") is not None and system.run(["sudo", "-n", "true"]) == 0:
        return ["sudo", "-n"]
    return None


def plan_fetch(spec: DatasetSpec, data_root, *, download: bool, allow_apt: bool, system: System) -> list[str]:
    """The steps to try, in order: ["present"], or a subset of ["apt", "download"] (empty: only instructions)."""
    if spec.name == "digits" or find_files(spec, data_root) is not None:
        return ["present"]
    steps = []
    if allow_apt and spec.system_package and apt_prefix(system) is not None:
        steps.append("apt")
    if download:
        steps.append("download")
    return steps


def _apt_install(spec: DatasetSpec, system: System) -> str | None:
    """None when the package installed, else why not (update the package lists once, then retry)."""
    prefix = apt_prefix(system) or []
    install = [*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", spec.system_package]
    if system.run(install) != 0 and (system.run([*prefix, "apt-get", "update", "-q"]) != 0 or system.run(install) != 0):
        return f"`{' '.join(install)}` failed"
    return None


def instructions(spec: DatasetSpec, data_root, tried: list[str]) -> DataError:
    """The error that says exactly how to get the files (and what was tried)."""
    folder = default_data_root(data_root) / spec.name
    lines = [f"{spec.name} is not on this machine" + (f" and could not be fetched ({'; '.join(tried)})." if tried
                                                      else ".") + " Do one of:"]
    if spec.system_package:
        lines.append(f"  sudo apt-get install {spec.system_package}     (Debian/Ubuntu; files go to {spec.system_dir}/)")
    lines.append(f"  {'or ' if spec.system_package else ''}download these files and put them in {folder}/ :")
    lines += [f"    {name}  <-  {url}" for name, url, _ in spec.files]
    lines.append(f"  (or set $SORTNET_DATA / --data-root to a folder containing {spec.name}/), then run the command again.")
    return DataError("\n".join(lines))


def fetch_dataset(name: str, data_root=None, *, download: bool = True, allow_apt: bool = True,
                  progress: bool = True, system: System | None = None,
                  say: Callable[[str], None] = lambda msg: None) -> Path | None:
    """Folder holding the dataset's files after trying the plan (None for bundled datasets); DataError if none worked."""
    key = builtin_name(name)
    if key is None:
        raise DataError(f"unknown built-in dataset {name!r}; built-in datasets: {', '.join(DATASETS)}")
    spec, system = DATASETS[key], system or System()
    steps = plan_fetch(spec, data_root, download=download, allow_apt=allow_apt, system=system)
    tried: list[str] = []
    for step in steps:
        if step == "present":
            return find_files(spec, data_root)
        if step == "apt":
            say(f"installing Debian package {spec.system_package} (apt-get)")
            why = _apt_install(spec, system)
            if why is None and find_files(spec, data_root) is not None:
                return find_files(spec, data_root)
            tried.append(why or f"{spec.system_package} installed but its files are not in {spec.system_dir}")
        elif step == "download":
            say(f"downloading {spec.name} from {spec.files[0][1].rsplit('/', 1)[0]}/")
            failures = download_missing(spec, data_root, progress)
            if not failures:
                return default_data_root(data_root) / spec.name
            tried.append("download failed: " + "; ".join(failures))
    if not download:
        tried.append("download disabled")
    raise instructions(spec, data_root, tried)
