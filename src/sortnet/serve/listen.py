"""The listening socket of `sortnet serve` and `sortnet studio`, bound before anything is printed.

A busy port (or a host that cannot be bound) is one ServeError line, before the page URL is shown; the
bound socket is then handed to uvicorn (`uvicorn.Server(config).run(sockets=[sock])`), so there is no gap
in which another program could take the port.

Usage:
    sock = bind_socket("127.0.0.1", 8000)       # ServeError with what to do
"""
from __future__ import annotations

import errno
import socket

from sortnet.errors import SortnetError

BACKLOG = 2048  # uvicorn's default


class ServeError(SortnetError):
    """The server cannot start (address in use, unknown host, not allowed)."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (as uvicorn makes it); ServeError with what to do when it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, IndexError) as e:
        raise ServeError(f"cannot listen on {host}:{port} ({getattr(e, 'strerror', None) or e}); check --host") from e
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        hint = ("another program (or another sortnet server) is using it: stop it or choose another --port"
                if e.errno == errno.EADDRINUSE else "choose another --port or --host")
        raise ServeError(f"cannot listen on {host}:{port}: {e.strerror or e}; {hint}") from e
    sock.set_inheritable(True)
    return sock
