"""Run the real `sortnet` console script (the one pip installed next to this Python) in a subprocess."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def sortnet_command() -> list[str]:
    script = Path(sys.executable).parent / "sortnet"
    if script.exists():
        return [str(script)]
    found = shutil.which("sortnet")
    return [found] if found else [sys.executable, "-m", "sortnet"]


def run_cli(*args: str, timeout: float = 300, check: bool = True, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(sortnet_command() + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"sortnet {' '.join(map(str, args))} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def popen_cli(*args: str, cwd=None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(sortnet_command() + [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
