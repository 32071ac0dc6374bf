"""Run the real `sortnet` console script (the one pip installed next to this Python) in a subprocess."""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

BOUNDED_MEMORY = 6 << 30  # bytes of address space for a bounded run: torch + a tiny job fit, a runaway does not


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


def run_cli_bounded(*args: str, timeout: float = 60, memory: int = BOUNDED_MEMORY, env: dict | None = None,
                    cwd=None) -> subprocess.CompletedProcess:
    """run_cli for hostile inputs: a hang ends at `timeout` (TimeoutExpired) and a memory runaway at `memory`
    bytes of address space (RLIMIT_AS), instead of freezing or swapping the machine. Never raises on rc != 0."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run(sortnet_command() + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd, preexec_fn=limit)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """The CLI's refusal: exit status 2, one stderr line (no traceback) holding every needle; that line."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
