"""Connection deadlines for `sortnet serve`: a client that sends its request headers too slowly is cut off.

uvicorn closes idle keep-alive connections (timeout_keep_alive) but not a connection that trickles its
headers a byte at a time (slowloris): such a connection never reaches the app, so no app-level timeout
can see it. HeaderDeadlineH11 is uvicorn's own h11 protocol (passed as its documented `http=` option)
plus one timer per connection: if a request's headers are not complete `header_timeout` seconds after
the connection opened (or after the previous response), the connection is closed. Slow bodies are cut
off by the app itself (serve.limits.read_body), before a worker slot is taken.

Usage:
    uvicorn.run(app, host="127.0.0.1", port=8000, **server_options(limits))
"""
from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderDeadlineH11(H11Protocol):
    """H11Protocol that closes a connection whose request headers are not complete in `header_timeout` s."""

    header_timeout = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()  # the next request on this keep-alive connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_deadline)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        """No request in progress at the deadline: its headers never completed (or the line is idle)."""
        self._header_timer = None
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()


def header_deadline_protocol(seconds: float) -> type[HeaderDeadlineH11]:
    """A HeaderDeadlineH11 subclass with its deadline set (uvicorn instantiates the class per connection)."""
    return type("HeaderDeadlineH11", (HeaderDeadlineH11,), {"header_timeout": float(seconds)})


def server_options(limits) -> dict:
    """uvicorn.Config keyword arguments for a ServeLimits: header deadline, connection cap, keep-alive."""
    return {"http": header_deadline_protocol(limits.header_timeout_s), "limit_concurrency": limits.max_connections,
            "timeout_keep_alive": max(1, int(round(limits.keep_alive_s)))}
