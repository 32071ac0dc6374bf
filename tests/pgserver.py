"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, listening on 127.0.0.1 only.

Uses Debian's `postgresql` package (binaries in /usr/lib/postgresql/<version>/bin). PostgreSQL refuses to
run as root, so under root the server runs as the `postgres` user (via runuser); the caller skips with the
reason when that is impossible.

Usage:
    with postgres_server() as url:        # postgresql://sortnet@127.0.0.1:PORT/postgres (trust auth)
        ...
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class Unavailable(Exception):
    """No way to run a PostgreSQL server here (the message says why)."""


def _bin_dir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise Unavailable("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    return versions[-1].parent


def _runner() -> tuple[list[str], int | None]:
    """(command prefix, uid to own the data folder): run as `postgres` when this process is root."""
    if os.geteuid() != 0:
        return [], None
    import pwd

    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        raise Unavailable("running as root and there is no `postgres` user to run the server as") from None
    if not shutil.which("runuser"):
        raise Unavailable("running as root and `runuser` is missing (util-linux)")
    return ["runuser", "-u", "postgres", "--"], uid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server(timeout: float = 60):
    bin_dir = _bin_dir()
    prefix, uid = _runner()
    root = Path(tempfile.mkdtemp(prefix="sortnet-pg-"))
    server = None
    try:
        if uid is not None:
            os.chown(root, uid, -1)
        data = root / "data"
        subprocess.run(prefix + [str(bin_dir / "initdb"), "-D", str(data), "-U", "sortnet", "--auth=trust",
                                 "--no-sync", "-E", "UTF8"], check=True, capture_output=True, timeout=timeout)
        port = _free_port()
        server = subprocess.Popen(prefix + [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
                                            "-k", str(root), "-c", "listen_addresses=127.0.0.1",
                                            "-c", "fsync=off", "-c", "max_connections=50"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait_ready(port, server, timeout)
        yield f"postgresql://sortnet@127.0.0.1:{port}/postgres"
    finally:
        if server is not None:
            server.terminate()  # SIGTERM: PostgreSQL's "smart" shutdown
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(port: int, server: subprocess.Popen, timeout: float) -> None:
    """Until a real login works (the port opens before the server accepts sessions)."""
    import psycopg

    t0 = time.time()
    while time.time() - t0 < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited with {server.returncode}: {server.stderr.read()}")
        try:
            psycopg.connect(host="127.0.0.1", port=port, user="sortnet", dbname="postgres", connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.2)
    raise RuntimeError(f"postgres did not accept connections on port {port} within {timeout} s")
