"""What keeps other web pages and other hosts from driving a local studio server that writes files.

- Host header: only the names the server was started for (127.0.0.1, localhost, ::1 and the --host
  given), with its port: a DNS-rebinding page reaches the server under its own name and is refused (421).
- A per-session token (random, 256 bits) is put into the page; every POST must send it in the
  X-Sortnet-Token header (a custom header: a cross-site form cannot set one, and a cross-site fetch that
  sets it needs a CORS preflight this server never grants). Compared in constant time; 403 otherwise.

Usage:
    guard = Guard(host="127.0.0.1", port=8765); app.middleware("http")(guard.middleware)
"""
from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from fastapi.responses import JSONResponse

TOKEN_HEADER = "x-sortnet-token"
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")


class Guard:
    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(32)
        names = set(LOCAL_NAMES)
        if host not in ("0.0.0.0", "::", ""):
            names.add(f"[{host}]" if ":" in host else host)
        self.hosts = {f"{n}:{port}".lower() for n in names} | ({n.lower() for n in names} if port == 80 else set())

    def host_ok(self, host_header: str | None) -> bool:
        return (host_header or "").lower() in self.hosts

    def token_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.token.encode())

    async def middleware(self, request: Request, call_next):
        if not self.host_ok(request.headers.get("host")):
            return JSONResponse({"detail": "unexpected Host header; open the page at the address sortnet studio "
                                           "printed"}, status_code=421)
        if request.method not in ("GET", "HEAD") and not self.token_ok(request.headers.get(TOKEN_HEADER)):
            return JSONResponse({"detail": "missing or wrong session token; reload the studio page"}, status_code=403)
        response = await call_next(request)
        # crossOriginIsolated: onnxruntime-web may use threads; also keeps other origins from embedding the page
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Cross-Origin-Embedder-Policy"] = "require-corp"
        response.headers["X-Frame-Options"] = "DENY"
        return response
